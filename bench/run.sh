#!/usr/bin/env bash
# Side-by-side throughput and tail latency on loopback: the upstream alone
# (nginx `return 200`), haproxy and nginx as plain proxies, and hookguard
# doing full work (HMAC, timestamp window, a fresh dedupe claim and
# completion per request, forwarding). Rounds alternate between the
# targets; medians are reported with ratios against the best plain proxy.
# Then the same for 256 KiB bodies, and each replay store's memory per key
# (Redis only where redis-server is installed).
#
#   bench/run.sh            # ROUNDS=3 DURATION=8 CONNECTIONS=32 by default
#
# Loopback only; bounded: targets x rounds x DURATION seconds per table.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-1}

need() { # need COMMAND PACKAGE
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "installing $2 (for $1)" >&2
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "$2" >/dev/null
    fi
}
need wrk wrk
need nginx nginx-light
need haproxy haproxy
need openssl openssl

echo "building hookguard (release)" >&2
cargo build --release --quiet --bin hookguard --example replay_memory
HOOKGUARD=target/release/hookguard

WORK=$(mktemp -d /tmp/hookguard-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

UPSTREAM_PORT=18480
HOOKGUARD_PORT=18400
ADMIN_PORT=18401
HAPROXY_PORT=18402
NGINX_PORT=18403
SECRET=bench-secret

cat > "$WORK/upstream.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/upstream.pid;
error_log $WORK/upstream.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/body;
    client_max_body_size 1m;
    client_body_buffer_size 512k;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$UPSTREAM_PORT reuseport;
        location / { return 200 "ok\n"; }
    }
}
CONF

cat > "$WORK/nginx-proxy.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx-proxy.pid;
error_log $WORK/nginx-proxy.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/proxy-body;
    proxy_temp_path $WORK/proxy-temp;
    client_max_body_size 1m;
    client_body_buffer_size 512k;
    keepalive_requests 1000000;
    upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF

cat > "$WORK/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend bench
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend app
backend app
    server app 127.0.0.1:$UPSTREAM_PORT
CONF

cat > "$WORK/hookguard.toml" <<CONF
[server]
listen = "127.0.0.1:$HOOKGUARD_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
upstream = "http://127.0.0.1:$UPSTREAM_PORT"
max_body = "512KiB"

[replay]
max_entries = 2000000

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
CONF

nginx -c "$WORK/upstream.conf" & PIDS+=($!)
nginx -c "$WORK/nginx-proxy.conf" & PIDS+=($!)
haproxy -f "$WORK/haproxy.cfg" -db & PIDS+=($!)
RUST_LOG=warn "$HOOKGUARD" serve --config "$WORK/hookguard.toml" 2>"$WORK/hookguard.log" & PIDS+=($!)

for port in $UPSTREAM_PORT $NGINX_PORT $HAPROXY_PORT $HOOKGUARD_PORT; do
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        sleep 0.1
    done
done

make_body() { # make_body FILE BYTES
    python3 - "$1" "$2" <<'PY'
import json, sys
path, size = sys.argv[1], int(sys.argv[2])
doc = {"id": "evt_bench", "type": "payment.succeeded", "note": ""}
doc["note"] = "x" * max(0, size - len(json.dumps(doc)))
open(path, "w").write(json.dumps(doc))
PY
}

# run_table LABEL BODY_FILE
run_table() {
    local label=$1 body=$2
    export BENCH_BODY=$body
    BENCH_SIGNATURE=$(openssl dgst -sha256 -hmac "$SECRET" -r "$body" | cut -d' ' -f1)
    BENCH_TIMESTAMP=$(date +%s)
    export BENCH_SIGNATURE BENCH_TIMESTAMP
    local targets=("upstream:$UPSTREAM_PORT" "haproxy:$HAPROXY_PORT" "nginx:$NGINX_PORT" "hookguard:$HOOKGUARD_PORT")
    local results="$WORK/results-$label"
    : > "$results"
    for round in $(seq "$ROUNDS"); do
        for target in "${targets[@]}"; do
            local name=${target%%:*} port=${target##*:}
            local line
            line=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/wrk.lua \
                "http://127.0.0.1:$port/bench/hook" | grep '^RESULT')
            echo "$label round $round $name: $line" >&2
            echo "$name $line" >> "$results"
        done
    done
    python3 - "$results" "$label" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name = line.split()[0]
    fields = dict(re.findall(r"(\w+)=([\d.]+)", line))
    rows.setdefault(name, []).append(fields)
def med(name, key):
    return statistics.median(float(r[key]) for r in rows[name])
errors = {n: sum(int(r["errors"]) for r in rs) for n, rs in rows.items()}
best_plain = max(("haproxy", "nginx"), key=lambda n: med(n, "rps"))
print(f"\n### {sys.argv[2]} (medians of {len(rows['hookguard'])} rounds)\n")
print("| path | requests/s | p99 | rps vs best plain proxy | p99 vs haproxy | non-2xx/errors |")
print("|---|---|---|---|---|---|")
names = {"upstream": "upstream (nginx `return 200`) directly", "haproxy": "haproxy, 1 thread, plain proxy",
         "nginx": "nginx, 1 worker, plain proxy", "hookguard": "hookguard, full verification"}
for n in ("upstream", "haproxy", "nginx", "hookguard"):
    print(f"| {names[n]} | {med(n, 'rps'):,.0f} | {med(n, 'p99_ms'):.2f} ms | "
          f"{med(n, 'rps') / med(best_plain, 'rps'):.2f}x | {med(n, 'p99_ms') / med('haproxy', 'p99_ms'):.2f}x | {errors[n]} |")
if errors["hookguard"]:
    print(f"\nWARNING: hookguard answered {errors['hookguard']} requests with errors; the figures are not valid", file=sys.stderr)
    sys.exit(1)
PY
}

make_body "$WORK/body-1k.json" 1024
make_body "$WORK/body-256k.json" 262144
echo "# hookguard benchmark: $(nproc) cores, $CONNECTIONS connections, wrk $WRK_THREADS thread(s), $DURATION s x $ROUNDS rounds"
run_table "1 KiB signed JSON bodies" "$WORK/body-1k.json"
run_table "256 KiB signed JSON bodies" "$WORK/body-256k.json"
echo
target/release/examples/replay_memory 1000000
