#!/usr/bin/env bash
# Recovery of the embedded delivery queue after SIGKILL, with a backlog:
# hookguard (release build, defaults otherwise) with one durable route and
# the app down (nothing listens on its port, so every item stays pending),
# filled by wrk with signed 1 KiB requests, each its own delivery, until
# at least PENDING items are queued; then, ROUNDS times, SIGKILL while
# wrk is sending, a fresh start on the same file, and the time from the
# start to /readyz answering 200 (the queue open and recovered), polled
# every 10 ms. The pending count is read once it is ready.
#
#   bench/recovery.sh              # PENDING=100000 ROUNDS=3 QUEUE_DIR=a temporary directory
#
# QUEUE_DIR: where the queue file goes (put it on the disk to measure).
# Loopback only; bounded: the fill stops after 120 s whatever it reached,
# and each start is given 60 s.
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

echo "building hookguard (release)" >&2
cargo build --release --quiet --bin hookguard
HOOKGUARD=target/release/hookguard

WORK=$(mktemp -d /tmp/hookguard-recovery.XXXXXX)
QUEUE_DIR=${QUEUE_DIR:-$WORK}
PID=
cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
    rm -f "$QUEUE_DIR/recovery-bench.db"
}
trap cleanup EXIT

PORT=18700
ADMIN=18750
APP_PORT=18781 # nothing listens here: the app is down
SECRET=bench-secret
cat > "$WORK/hookguard.toml" <<CONF
[server]
listen = "127.0.0.1:$PORT"
admin_listen = "127.0.0.1:$ADMIN"
upstream = "http://127.0.0.1:$APP_PORT"

[queue]
store = "embedded"
path = "$QUEUE_DIR/recovery-bench.db"
max_bytes = "4GiB"

[[routes]]
name = "bench"
path = "/bench/*"
scheme = "hmac"
secrets = [{ value = "$SECRET" }]
dedupe = ["header:X-Delivery"]

[routes.hmac]
header = "X-Signature"
prefix = "sha256="
timestamp_header = "X-Timestamp"

[routes.delivery]
mode = "durable"
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

echo "# hookguard: recovery after SIGKILL, $(nproc) cores, queue file in $QUEUE_DIR"
echo
echo "| round | items pending | queue file | start to /readyz 200 | the store's open (from its log line) |"
echo "|---|---|---|---|---|"
start
ready_ms "$(date +%s%N)" >/dev/null
filled_at=$(date +%s)
while [ "$(pending)" -lt "$PENDING" ]; do
    if [ $(( $(date +%s) - filled_at )) -gt 120 ]; then
        echo "the fill reached only $(pending) items in 120 s" >&2
        break
    fi
    BENCH_TIMESTAMP=$(date +%s) wrk -t1 -c32 -d5s -s bench/wrk.lua \
        "http://127.0.0.1:$PORT/bench/hook" | grep '^RESULT' >&2
done
for round in $(seq "$ROUNDS"); do
    # Killed while it takes requests, as a crash would find it.
    BENCH_TIMESTAMP=$(date +%s) wrk -t1 -c32 -d3s -s bench/wrk.lua \
        "http://127.0.0.1:$PORT/bench/hook" >/dev/null &
    sleep 1.5
    kill -9 "$PID"
    wait "$PID" 2>/dev/null || true
    wait 2>/dev/null || true
    size=$(du -m "$QUEUE_DIR/recovery-bench.db" | cut -f1)
    : > "$WORK/hookguard.log"
    started=$(date +%s%N)
    start
    took=$(ready_ms "$started")
    opened=$(grep -o '"took_ms":[0-9]*' "$WORK/hookguard.log" | head -1 | cut -d: -f2)
    echo "| $round | $(pending) | $size MB | $took ms | ${opened:-?} ms |"
done
