#!/usr/bin/env bash
# Installs the comparison peer, Matrix Synapse, into a virtual environment
# beside this crate (bench/.venv, ignored by git) and generates its base
# configuration (bench/.synapse/homeserver.yaml: server name, signing key).
# The generator adds, per run, a port on loopback, a fresh SQLite file and the
# registration secret; bench.yaml here raises the rate limits.
# Idempotent: a second run reuses what is there.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
bench="$(dirname "$here")"
venv="${SYNAPSE_VENV:-$bench/.venv}"
conf="${SYNAPSE_CONF_DIR:-$bench/.synapse}"
# Pinned: the version the figures in BENCHMARKS.md were taken with.
version="${SYNAPSE_VERSION:-1.163.2}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating virtual environment $venv" >&2
    "$python" -m venv "$venv"
fi
installed() { "$venv/bin/python" -c "import importlib.metadata as m; print(m.version('matrix-synapse'))" 2>/dev/null; }
if [ "$(installed)" != "$version" ]; then
    echo "installing matrix-synapse $version" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==$version"
fi

mkdir -p "$conf"
if [ ! -f "$conf/homeserver.yaml" ]; then
    (cd "$conf" && "$venv/bin/python" -m synapse.app.homeserver \
        --server-name bench.localhost \
        --config-path "$conf/homeserver.yaml" \
        --data-directory "$conf" \
        --generate-config --report-stats=no)
fi
echo "matrix-synapse $(installed) ready in $venv, config in $conf" >&2
