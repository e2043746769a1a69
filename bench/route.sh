# The bench route, shared by the bench scripts (sourced from the project
# root): HMAC-SHA256 of the body with a timestamp, the way bench/wrk.lua
# and bench/instructions.sh sign, deduped on the X-Delivery header each
# request sets afresh. Needs SECRET.

# bench_route: prints the [[routes]] table; a script may append the
# route's own sub-tables (such as [routes.delivery]) after it.
bench_route() {
    cat <<CONF

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
}
