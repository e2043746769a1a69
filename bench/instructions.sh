#!/usr/bin/env bash
# CPU cost per forwarded request in instructions, not seconds: each binary
# serves a fixed number of signed 1 KiB requests (fresh dedupe key each,
# one kept-alive sender, nginx `return 200` as the app) under
# `valgrind --tool=callgrind`, twice (N1 and N2 requests); the difference
# of the two totals divided by N2 - N1 cancels start-up and shutdown.
# Instruction counts do not move with what else the machine is doing, so
# this compares two builds when wall-clock benchmarks cannot (a shared or
# busy machine). Settings: the bench config of bench/run.sh, RUST_LOG=warn
# and RUST_LOG=info (the default) measured separately.
#
#   bench/instructions.sh BINARY [BINARY...]    # N1=500 N2=2500 by default
#   PAD=262100 N1=20 N2=120 bench/instructions.sh BINARY...   # 256 KiB bodies
#
# Loopback only; bounded by N2 requests per run.
set -euo pipefail
cd "$(dirname "$0")/.."

N1=${N1:-500}
N2=${N2:-2500}
# Bytes of padding in the JSON body (1000: a 1 KiB body; 262100: 256 KiB,
# then use N1=20 N2=120: valgrind hashes slowly).
PAD=${PAD:-1000}
for tool in valgrind nginx python3 curl; do
    command -v "$tool" >/dev/null || { echo "bench/instructions.sh: $tool not found" >&2; exit 1; }
done
[ $# -ge 1 ] || { echo "usage: bench/instructions.sh BINARY [BINARY...]" >&2; exit 2; }

WORK=$(mktemp -d /tmp/hookguard-icount.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

APP_PORT=18680
HG_PORT=18600
ADMIN_PORT=18601
SECRET=bench-secret
. bench/route.sh

cat > "$WORK/app.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/app.pid;
error_log $WORK/app.err warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/body;
    # nginx's default keepalive_requests (1000): the app closes a kept-alive
    # connection every 1000 requests, as ordinary apps do, and hookguard pays
    # for reconnecting.
    server { listen 127.0.0.1:$APP_PORT; location / { return 200 "ok\n"; } }
}
CONF
nginx -c "$WORK/app.conf" & PIDS+=($!)

cat > "$WORK/hookguard.toml" <<CONF
[server]
listen = "127.0.0.1:$HG_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
upstream = "http://127.0.0.1:$APP_PORT"
$(bench_route)
CONF

# One kept-alive sender, N signed requests, each answer read whole.
cat > "$WORK/send.py" <<'PY'
import hashlib, hmac, socket, sys, time
port, n, secret = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
body = (b'{"id":"evt","pad":"' + b"x" * int(sys.argv[4]) + b'"}')
sig = hmac.new(secret, body, hashlib.sha256).hexdigest()
ts = str(int(time.time()))
sock = socket.create_connection(("127.0.0.1", port))
buf = b""
for i in range(n):
    head = (f"POST /bench/hook HTTP/1.1\r\nHost: bench.local\r\nContent-Type: application/json\r\n"
            f"X-Signature: sha256={sig}\r\nX-Timestamp: {ts}\r\nX-Delivery: {time.time_ns()}-{i}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    sock.sendall(head + body)
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    end = buf.index(b"\r\n\r\n") + 4
    status = buf[9:12]
    length = int([l.split(b":")[1] for l in buf[:end].split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(buf) < end + length:
        buf += sock.recv(65536)
    assert status == b"200", buf[:end]
    buf = buf[end + length:]
PY

# run BINARY N LOG -> total instructions
run() {
    local bin=$1 n=$2 log=$3 out="$WORK/callgrind.$RANDOM"
    RUST_LOG=$log valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$bin" serve --config "$WORK/hookguard.toml" 2>"$WORK/hg.log" >/dev/null &
    local pid=$!
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
        sleep 0.2
    done
    python3 "$WORK/send.py" "$HG_PORT" "$n" "$SECRET" "$PAD"
    kill -TERM "$pid"
    wait "$pid" || true
    # Sum every thread's totals (callgrind writes one file per thread).
    cat "$out"* | awk '/^summary:/ { s += $2 } END { print s }'
    rm -f "$out"*
}

echo "# instructions per forwarded request (callgrind; N=$N2 minus N=$N1 requests, signed JSON body of $((PAD + 20)) bytes, fresh dedupe key each)"
echo "| binary | RUST_LOG | instructions per request |"
echo "|---|---|---|"
for bin in "$@"; do
    for log in warn info; do
        small=$(run "$bin" "$N1" "$log")
        large=$(run "$bin" "$N2" "$log")
        echo "| $bin | $log | $(( (large - small) / (N2 - N1) )) |"
    done
done
