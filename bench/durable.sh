#!/usr/bin/env bash
# The embedded delivery queue as a user runs it: hookguard (release build,
# defaults: RUST_LOG unset, one JSON line per request, stderr to a file)
# with one durable route (concurrency 32) in front of an app.
#
# 1. Accept: the app down (nothing listens on its port, so every item
#    stays pending), wrk (1 thread, 32 connections, 5 s a round) sends
#    signed 1 KiB requests, each its own delivery, until at least PENDING
#    items are queued; each round's rate and p99 of the 202s is printed.
# 2. Recovery: ROUNDS times, SIGKILL while wrk is sending, a fresh start on
#    the same file, and the time from the start to /readyz answering 200
#    (the queue open, its journal replayed, in-flight items made ready),
#    polled every 10 ms. The pending count is read once it is ready.
# 3. Drain: an nginx `return 200` app comes up on the route's upstream,
#    and the backlog is timed until nothing is pending (polled every
#    100 ms).
#
#   bench/durable.sh              # PENDING=100000 ROUNDS=3 QUEUE_DIR=a temporary directory
#
# QUEUE_DIR: where the queue file goes (put it on the disk to measure).
# Loopback only; bounded: the fill stops after 120 s whatever it reached,
# each start is given 60 s and the drain 180 s.
set -euo pipefail
cd "$(dirname "$0")/.."

PENDING=${PENDING:-100000}
ROUNDS=${ROUNDS:-3}

need() { # need COMMAND PACKAGE
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "installing $2 (for $1)" >&2
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "$2" >/dev/null
    fi
}
need wrk wrk
need openssl openssl
need curl curl
need nginx nginx-light

echo "building hookguard (release)" >&2
cargo build --release --quiet --bin hookguard
HOOKGUARD=target/release/hookguard

WORK=$(mktemp -d /tmp/hookguard-recovery.XXXXXX)
QUEUE_DIR=${QUEUE_DIR:-$WORK}
PID=
APP=
cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
    [ -n "$APP" ] && kill "$APP" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
    rm -f "$QUEUE_DIR/durable-bench.db" "$QUEUE_DIR/durable-bench.db-journal"
}
trap cleanup EXIT

PORT=18700
ADMIN=18750
APP_PORT=18781 # nothing listens here: the app is down
SECRET=bench-secret
. bench/route.sh
cat > "$WORK/hookguard.toml" <<CONF
[server]
listen = "127.0.0.1:$PORT"
admin_listen = "127.0.0.1:$ADMIN"
upstream = "http://127.0.0.1:$APP_PORT"

[queue]
store = "embedded"
path = "$QUEUE_DIR/durable-bench.db"
max_bytes = "4GiB"
$(bench_route)

[routes.delivery]
mode = "durable"
concurrency = 32
# The route pauses while the app is down and probes when a pause ends;
# a short step keeps the drain's figure about delivery, not the pause.
backoff = ["1s"]
CONF

python3 - "$WORK/body.json" <<'PY'
import json, sys
doc = {"id": "evt_bench", "type": "payment.succeeded", "note": ""}
doc["note"] = "x" * (1024 - len(json.dumps(doc)))
open(sys.argv[1], "w").write(json.dumps(doc))
PY
export BENCH_BODY=$WORK/body.json
BENCH_SIGNATURE=$(openssl dgst -sha256 -hmac "$SECRET" -r "$BENCH_BODY" | cut -d' ' -f1)
export BENCH_SIGNATURE

start() {
    "$HOOKGUARD" serve --config "$WORK/hookguard.toml" 2>>"$WORK/hookguard.log" &
    PID=$!
}

# Milliseconds from now until /readyz answers 200 (at most 60 s).
ready_ms() {
    local started=$1
    for _ in $(seq 6000); do
        if curl -sf -o /dev/null "http://127.0.0.1:$ADMIN/readyz"; then
            echo $(( ($(date +%s%N) - started) / 1000000 ))
            return
        fi
        sleep 0.01
    done
    echo "hookguard was not ready within 60 s:" >&2
    tail -5 "$WORK/hookguard.log" >&2
    exit 1
}

pending() { # ready + waiting + in flight, from the admin listener
    curl -sf "http://127.0.0.1:$ADMIN/queue/stats" | python3 -c '
import json, sys
routes = json.load(sys.stdin)["routes"]
print(sum(n for route in routes.values() for state, n in route.items() if state in ("ready", "waiting", "in_flight")))'
}

echo "# hookguard: durable delivery, $(nproc) cores, queue file in $QUEUE_DIR"
echo
echo "hookguard: release build, defaults (RUST_LOG unset: info, a JSON line per request, stderr to a file), one durable route, concurrency 32. Load: wrk 1 thread, 32 connections, signed 1 KiB bodies, each its own delivery."
echo
echo "## Accept, the app down"
echo
echo "| round | 202s a second | p99 | pending after |"
echo "|---|---|---|---|"
start
ready_ms "$(date +%s%N)" >/dev/null
filled_at=$(date +%s)
round=0
while [ "$(pending)" -lt "$PENDING" ]; do
    if [ $(( $(date +%s) - filled_at )) -gt 120 ]; then
        echo "the fill reached only $(pending) items in 120 s" >&2
        break
    fi
    round=$((round + 1))
    result=$(BENCH_TIMESTAMP=$(date +%s) wrk -t1 -c32 -d5s -s bench/wrk.lua \
        "http://127.0.0.1:$PORT/bench/hook" | grep '^RESULT')
    rps=$(sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$result")
    p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$result")
    errors=$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$result")
    echo "| $round | $rps | $p99 ms | $(pending) |"
    [ "$errors" = 0 ] || echo "round $round: $errors requests were not answered 202" >&2
done

echo
echo "## Recovery after SIGKILL"
echo
echo "| round | items pending | queue file | start to /readyz 200 | the store's open (from its log line) |"
echo "|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
    # Killed while it takes requests, as a crash would find it.
    BENCH_TIMESTAMP=$(date +%s) wrk -t1 -c32 -d3s -s bench/wrk.lua \
        "http://127.0.0.1:$PORT/bench/hook" >/dev/null &
    sleep 1.5
    kill -9 "$PID"
    wait "$PID" 2>/dev/null || true
    wait 2>/dev/null || true
    size=$(du -m "$QUEUE_DIR/durable-bench.db" | cut -f1)
    : > "$WORK/hookguard.log"
    started=$(date +%s%N)
    start
    took=$(ready_ms "$started")
    opened=$(grep -o '"took_ms":[0-9]*' "$WORK/hookguard.log" | head -1 | cut -d: -f2)
    echo "| $round | $(pending) | $size MB | $took ms | ${opened:-?} ms |"
done

echo
echo "## Drain once the app takes deliveries"
echo
mkdir -p "$WORK/app-body"
cat > "$WORK/app.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/app.pid;
error_log $WORK/app.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/app-body;
    # keepalive_requests: nginx's default (1000), as an app has it.
    server {
        listen 127.0.0.1:$APP_PORT;
        location / { return 200 "ok\n"; }
    }
}
CONF
backlog=$(pending)
nginx -c "$WORK/app.conf" &
APP=$!
started=$(date +%s%N)
first=
left=$backlog
for _ in $(seq 1800); do
    left=$(pending)
    [ -z "$first" ] && [ "$left" -lt "$backlog" ] && first=$(date +%s%N)
    [ "$left" -eq 0 ] && break
    sleep 0.1
done
ended=$(date +%s%N)
first=${first:-$ended}
seconds() { # seconds FROM TO (ns), to the millisecond
    local ms=$(( ($2 - $1) / 1000000 ))
    echo "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
}
draining_ms=$(( (ended - first) / 1000000 ))
delivered=$((backlog - left))
echo "| backlog | delivered | the app up to the first delivery (the pause's probe) | draining | deliveries a second |"
echo "|---|---|---|---|---|"
echo "| $backlog | $delivered | $(seconds "$started" "$first") s | $(seconds "$first" "$ended") s | $((delivered * 1000 / (draining_ms > 0 ? draining_ms : 1))) |"
[ "$left" -eq 0 ] || echo "the drain left $left items pending after 180 s" >&2
