#!/usr/bin/env bash
# Side-by-side throughput and tail latency on loopback, at the settings
# users run: hookguard with its defaults (RUST_LOG unset, so `info`: one
# JSON line per request, stderr redirected to a file), behind it an nginx
# `return 200` app with nginx's default `keepalive_requests` (1000: it
# closes a kept-alive connection every 1,000 requests, as php-fpm and Node
# apps close theirs too), haproxy and nginx as plain proxies in front of the
# same app. hookguard does full work per request: HMAC, the timestamp
# window, a fresh dedupe claim and completion, forwarding.
#
# Tables, each from rounds that alternate between its targets (medians):
#   1 KiB bodies: the app directly, haproxy, nginx, hookguard (defaults),
#     and hookguard with RUST_LOG=warn (no per-request line) for comparison;
#   256 KiB bodies: the same without the warn row;
#   the Redis replay store (a local redis-server, no persistence) against
#     the memory store, 1 KiB;
#   two workers: hookguard `workers = 2`, haproxy `nbthread 2`, nginx 2
#     workers, 1 KiB (a report: 2 cores are shared with wrk and the app);
# then the memory store's bytes per key.
#
# Beside each rate, CPU per request from /proc (user + system time of the
# proxy's processes, and of the app's, over the round, divided by the
# round's requests): on these 2 cores wrk, the app and the proxy share the
# CPU, so a proxy's rate follows what a request costs the whole machine,
# and these columns say where a difference comes from.
#
#   bench/run.sh            # ROUNDS=3 DURATION=8 CONNECTIONS=32 by default
#
# Loopback only; bounded: about (5+4+2+3) x ROUNDS x DURATION seconds.
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
need redis-server redis-server
need curl curl

echo "building hookguard (release)" >&2
cargo build --release --quiet --bin hookguard --example replay_memory
HOOKGUARD=target/release/hookguard

WORK=$(mktemp -d /tmp/hookguard-bench.XXXXXX)
PIDS=()
declare -A PID_OF # a target's name -> the process whose CPU is its own
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

UPSTREAM_PORT=18480
SECRET=bench-secret
. bench/route.sh

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
    # keepalive_requests: nginx's default (1000), as an app has it.
    server {
        listen 127.0.0.1:$UPSTREAM_PORT reuseport;
        location / { return 200 "ok\n"; }
    }
}
CONF

# nginx_proxy NAME PORT WORKERS: nginx as a plain proxy to the app.
nginx_proxy() {
    cat > "$WORK/$1.conf" <<CONF
worker_processes $3;
daemon off;
pid $WORK/$1.pid;
error_log $WORK/$1.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/$1-body;
    proxy_temp_path $WORK/$1-temp;
    client_max_body_size 1m;
    client_body_buffer_size 512k;
    keepalive_requests 1000000;
    upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$2;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
    nginx -c "$WORK/$1.conf" & PIDS+=($!)
    PID_OF[$1]=$!
}

# haproxy_proxy NAME PORT THREADS: haproxy as a plain proxy to the app.
haproxy_proxy() {
    cat > "$WORK/$1.cfg" <<CONF
global
    nbthread $3
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend bench
    bind 127.0.0.1:$2
    default_backend app
backend app
    server app 127.0.0.1:$UPSTREAM_PORT
CONF
    haproxy -f "$WORK/$1.cfg" -db & PIDS+=($!)
    PID_OF[$1]=$!
}

# hookguard_proxy NAME PORT RUST_LOG [EXTRA_SERVER_LINES [REPLAY_SECTION]]:
# hookguard on the bench route, defaults otherwise; RUST_LOG "" leaves it
# unset (the default, info); stderr to a file, as a container runtime or a
# shell redirect takes it.
hookguard_proxy() {
    local name=$1 port=$2 log=$3 server_extra=${4:-} replay=${5:-}
    cat > "$WORK/$name.toml" <<CONF
[server]
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$((port + 50))"
upstream = "http://127.0.0.1:$UPSTREAM_PORT"
max_body = "512KiB"
$server_extra

[replay]
${replay:-max_entries = 2000000}
$(bench_route)
CONF
    if [ -n "$log" ]; then
        env RUST_LOG="$log" "$HOOKGUARD" serve --config "$WORK/$name.toml" 2>"$WORK/$name.log" & PIDS+=($!)
    else
        env -u RUST_LOG "$HOOKGUARD" serve --config "$WORK/$name.toml" 2>"$WORK/$name.log" & PIDS+=($!)
    fi
    PID_OF[$name]=$!
}

REDIS_PORT=18490
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$WORK" --daemonize no >"$WORK/redis.log" 2>&1 & PIDS+=($!)

nginx -c "$WORK/upstream.conf" & PIDS+=($!)
PID_OF[upstream]=$!
haproxy_proxy haproxy 18402 1
nginx_proxy nginx 18403 1
hookguard_proxy hookguard 18400 ""
hookguard_proxy hookguard-warn 18404 warn
hookguard_proxy hookguard-redis 18405 "" "" "store = \"redis\"
redis_url = \"redis://127.0.0.1:$REDIS_PORT\""
haproxy_proxy haproxy-2 18406 2
nginx_proxy nginx-2 18407 2
hookguard_proxy hookguard-2 18408 "" "workers = 2"

for port in $UPSTREAM_PORT $REDIS_PORT 18400 18402 18403 18404 18405 18406 18407 18408; do
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        sleep 0.1
    done
done
# Ready means /readyz says so (the redis instance once its store answers).
for entry in hookguard:18400 hookguard-warn:18404 hookguard-redis:18405 hookguard-2:18408; do
    name=${entry%%:*} admin=$((${entry##*:} + 50))
    for _ in $(seq 100); do
        if curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1; then break; fi
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null || { echo "$name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1; }
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

cat > "$WORK/summary.py" <<'PY'
# summary.py RESULTS TITLE RATE_REFS P99_REF NAME=LABEL...
# RATE_REFS: comma-separated names; the best of them (by median rps) is
# the reference for the rate column.
import re, statistics, sys
results, title, rate_refs, p99_ref = sys.argv[1:5]
labels = dict(arg.split("=", 1) for arg in sys.argv[5:])
rows = {}
for line in open(results):
    name = line.split()[0]
    fields = dict(re.findall(r"(\w+)=([\d.]+)", line))
    rows.setdefault(name, []).append(fields)
def med(name, key):
    return statistics.median(float(r[key]) for r in rows[name])
errors = {n: sum(int(r["errors"]) for r in rs) for n, rs in rows.items()}
best = max(rate_refs.split(","), key=lambda n: med(n, "rps"))
rounds = min(len(rs) for rs in rows.values())
print(f"\n### {title} (medians of {rounds} rounds)\n")
print(f"| path | requests/s | p99 | rps vs {labels[best].split(',')[0]} | p99 vs {labels[p99_ref].split(',')[0]} | proxy CPU per request, user + system | app CPU per request | non-2xx/errors |")
print("|---|---|---|---|---|---|---|---|")
for n in labels:
    cpu = f"{med(n, 'user_us'):.2f} + {med(n, 'sys_us'):.2f} µs" if n != "upstream" else "(none)"
    print(f"| {labels[n]} | {med(n, 'rps'):,.0f} | {med(n, 'p99_ms'):.2f} ms | "
          f"{med(n, 'rps') / med(best, 'rps'):.2f}x | {med(n, 'p99_ms') / med(p99_ref, 'p99_ms'):.2f}x | "
          f"{cpu} | {med(n, 'app_us'):.2f} µs | {errors[n]} |")
bad = [n for n in labels if n.startswith("hookguard") and errors[n]]
if bad:
    print(f"\nWARNING: {', '.join(bad)} answered requests with errors; the figures are not valid", file=sys.stderr)
    sys.exit(1)
PY

# ticks PID: user and system clock ticks of PID and its child processes
# (nginx's workers; a process's own line counts all its threads).
ticks() {
    local user=0 system=0 pid fields
    for pid in "$1" $(pgrep -P "$1"); do
        # Fields after the command's closing parenthesis: utime is the
        # 12th, stime the 13th.
        fields=$(sed 's/.*) //' "/proc/$pid/stat") || continue
        read -r -a fields <<<"$fields"
        user=$((user + fields[11]))
        system=$((system + fields[12]))
    done
    echo "$user $system"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# run_table TITLE BODY_FILE RATE_REFS P99_REF NAME:PORT=LABEL...
run_table() {
    local title=$1 body=$2 rate_refs=$3 p99_ref=$4
    shift 4
    export BENCH_BODY=$body
    BENCH_SIGNATURE=$(openssl dgst -sha256 -hmac "$SECRET" -r "$body" | cut -d' ' -f1)
    BENCH_TIMESTAMP=$(date +%s)
    export BENCH_SIGNATURE BENCH_TIMESTAMP
    local results
    results=$(mktemp "$WORK/results.XXXXXX")
    local labels=()
    for target in "$@"; do labels+=("${target%%:*}=${target#*=}"); done
    for round in $(seq "$ROUNDS"); do
        for target in "$@"; do
            local name=${target%%:*} rest=${target#*:}
            local port=${rest%%=*}
            local line proxy_before app_before proxy_after app_after
            # The app measured directly has no proxy: its columns say 0.
            proxy_before=$( [ "$name" = upstream ] && echo "0 0" || ticks "${PID_OF[$name]}")
            app_before=$(ticks "${PID_OF[upstream]}")
            line=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/wrk.lua \
                "http://127.0.0.1:$port/bench/hook" | grep '^RESULT')
            proxy_after=$( [ "$name" = upstream ] && echo "0 0" || ticks "${PID_OF[$name]}")
            app_after=$(ticks "${PID_OF[upstream]}")
            line="$line $(python3 -c '
import sys
pb, pa, ab, aa = (list(map(int, a.split())) for a in sys.argv[1:5])
n, tick = int(sys.argv[5]), int(sys.argv[6])
per = lambda t: t * tick / max(n, 1)
print("user_us=%.2f sys_us=%.2f app_us=%.2f" % (per(pa[0] - pb[0]), per(pa[1] - pb[1]), per(sum(aa) - sum(ab))))
' "$proxy_before" "$proxy_after" "$app_before" "$app_after" "$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")" "$TICK_US")"
            echo "$title round $round $name: $line" >&2
            echo "$name $line" >> "$results"
        done
    done
    python3 "$WORK/summary.py" "$results" "$title" "$rate_refs" "$p99_ref" "${labels[@]}"
}

make_body "$WORK/body-1k.json" 1024
make_body "$WORK/body-256k.json" 262144
echo "# hookguard benchmark: $(nproc) cores, $CONNECTIONS connections, wrk $WRK_THREADS thread(s), $DURATION s x $ROUNDS rounds"
echo
echo "hookguard: release build, defaults (RUST_LOG unset = info, one JSON line per request, stderr to a file; workers = 1; memory replay store) unless a row says otherwise. App: nginx \`return 200\`, 1 worker, default keepalive_requests (1000)."
run_table "1 KiB signed JSON bodies" "$WORK/body-1k.json" haproxy,nginx haproxy \
    "upstream:$UPSTREAM_PORT=upstream (nginx \`return 200\`) directly" \
    "haproxy:18402=haproxy, 1 thread, plain proxy" \
    "nginx:18403=nginx, 1 worker, plain proxy" \
    "hookguard:18400=hookguard, defaults, full verification" \
    "hookguard-warn:18404=hookguard, RUST_LOG=warn (no request lines)"
run_table "256 KiB signed JSON bodies" "$WORK/body-256k.json" haproxy haproxy \
    "upstream:$UPSTREAM_PORT=upstream (nginx \`return 200\`) directly" \
    "haproxy:18402=haproxy, 1 thread, plain proxy" \
    "nginx:18403=nginx, 1 worker, plain proxy" \
    "hookguard:18400=hookguard, defaults, full verification"
run_table "Replay store: Redis against memory, 1 KiB" "$WORK/body-1k.json" hookguard hookguard \
    "hookguard:18400=hookguard, memory store (default)" \
    "hookguard-redis:18405=hookguard, redis store (local redis-server)"
run_table "Two workers (report: 2 cores shared with wrk and the app), 1 KiB" "$WORK/body-1k.json" haproxy-2,nginx-2 haproxy-2 \
    "haproxy-2:18406=haproxy, nbthread 2, plain proxy" \
    "nginx-2:18407=nginx, 2 workers, plain proxy" \
    "hookguard-2:18408=hookguard, workers = 2, full verification"
echo
target/release/examples/replay_memory 1000000
