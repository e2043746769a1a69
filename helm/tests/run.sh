#!/usr/bin/env bash
# Offline checks of the Helm chart (helm/hookguard) and the Dockerfile: no
# cluster, no docker engine, no helm binary. Installs its Python tools into
# target/helm-tests-venv, builds hookguard (to run `hookguard check` on the
# config the chart renders), then runs helm/tests/test_chart.py, which ends
# with "N passed, M failed" and exits non-zero if anything failed.
# Needs python3 (3.11+), cargo and promtool on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."

for tool in python3 cargo promtool; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "helm/tests/run.sh: $tool not found on PATH" >&2
        exit 1
    fi
done
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "helm/tests/run.sh: python3 is $(python3 --version 2>&1); 3.11 or later is needed (tomllib)" >&2
    exit 1
fi

venv=target/helm-tests-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r helm/tests/requirements.txt

# The same debug binary `cargo test` builds; a no-op when it is up to date.
cargo build --quiet --bin hookguard

PATH="$PWD/$venv/bin:$PATH" HOOKGUARD_BIN="$PWD/target/debug/hookguard" \
    "$venv/bin/python" helm/tests/test_chart.py
