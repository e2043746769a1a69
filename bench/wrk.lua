-- wrk script for bench/run.sh: every request is the same signed body with a
-- delivery id no other request has, so hookguard's dedupe claims and
-- completes a fresh key each time (the bench route dedupes on X-Delivery).
-- The raw request is assembled once; per request only the id is spliced in,
-- so the load generator stays cheap next to the servers it measures.
-- Environment: BENCH_BODY (file), BENCH_SIGNATURE, BENCH_TIMESTAMP.

local counter = 0
local head, tail

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_id", #threads)
end

function init(args)
   local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
   local body = f:read("*a")
   f:close()
   local prefix = string.format("%d-%d-%d-", os.time(), math.random(1, 1e9), thread_id or 0)
   head = "POST /bench/hook HTTP/1.1\r\n"
      .. "Host: bench.local\r\n"
      .. "Content-Type: application/json\r\n"
      .. "X-Signature: sha256=" .. os.getenv("BENCH_SIGNATURE") .. "\r\n"
      .. "X-Timestamp: " .. os.getenv("BENCH_TIMESTAMP") .. "\r\n"
      .. "Content-Length: " .. #body .. "\r\n"
      .. "X-Delivery: " .. prefix
   tail = "\r\n\r\n" .. body
end

function request()
   counter = counter + 1
   return head .. counter .. tail
end

function done(summary, latency, requests)
   local seconds = summary.duration / 1e6
   local bad = summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout
   io.write(string.format("RESULT rps=%.0f p99_ms=%.3f requests=%d errors=%d\n",
      summary.requests / seconds, latency:percentile(99) / 1000, summary.requests, bad))
end
