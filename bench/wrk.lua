-- wrk script for bench/run.sh: every request is the same signed body with a
-- delivery id no other request has, so hookguard's dedupe claims and
-- completes a fresh key each time (the route dedupes on X-Delivery).
-- Environment: BENCH_BODY (file), BENCH_SIGNATURE, BENCH_TIMESTAMP.

local counter = 0
local prefix = ""
local base = {}

local function read(path)
   local f = assert(io.open(path, "rb"))
   local data = f:read("*a")
   f:close()
   return data
end

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("thread_id", next_id)
   table.insert(threads, thread)
end

function init(args)
   prefix = string.format("%d-%d-%d-", os.time(), math.random(1, 1e9), thread_id or 0)
   wrk.method = "POST"
   wrk.body = read(os.getenv("BENCH_BODY"))
   base = {
      ["Content-Type"] = "application/json",
      ["X-Signature"] = "sha256=" .. os.getenv("BENCH_SIGNATURE"),
      ["X-Timestamp"] = os.getenv("BENCH_TIMESTAMP"),
      ["Host"] = "bench.local",
   }
end

function request()
   counter = counter + 1
   local headers = {}
   for k, v in pairs(base) do headers[k] = v end
   headers["X-Delivery"] = prefix .. counter
   return wrk.format(nil, "/bench/hook", headers, nil)
end

function done(summary, latency, requests)
   local seconds = summary.duration / 1e6
   local bad = summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout
   io.write(string.format("RESULT rps=%.0f p99_ms=%.3f requests=%d errors=%d\n",
      summary.requests / seconds, latency:percentile(99) / 1000, summary.requests, bad))
end
