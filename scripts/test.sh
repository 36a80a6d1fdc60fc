#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine (a venv with '.[dev]', redis-server,
# Helm, the API server binaries), then runs the whole suite.
# Used as-is by .ci/run. Needs no standard input and no running services.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[dev]'

# A private redis-server is started by the test fixtures; only the binary is needed.
if ! command -v redis-server >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
# The Redis Cluster fixture joins its nodes with redis-cli (Debian: redis-tools); the Sentinel
# fixture runs sentinels as `redis-server <conf> --sentinel`, which needs no other binary.
if ! command -v redis-cli >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq redis-tools >/dev/null
fi

# Graphviz's dot draws run pictures as SVG and PNG (floxide graph --run, the dashboard).
if ! command -v dot >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq graphviz >/dev/null
fi

# The dashboard's browser tests (tests/ui/test_browser.py) drive Debian's Chromium through
# Playwright (the PyPI package, given this Chromium; its own browser downloads are not used).
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi

bash scripts/install-helm.sh

# The cluster tier's real control plane: etcd, kube-apiserver, kube-controller-manager (and kubectl),
# from KUBEBUILDER_ASSETS or built once from the Go module proxy and cached (5-15 minutes the first
# time on 2 cores; seconds after that).
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
KUBEBUILDER_ASSETS="$(bash scripts/install-envtest.sh)"
export KUBEBUILDER_ASSETS

.venv/bin/ruff check floxide operator worker tests benchmarks examples
.venv/bin/mypy
# operator/ and worker/ are installed as the packages floxide_operator and floxide_worker: mypy
# (strict, as configured in pyproject.toml) reads them under those names through two links.
mkdir -p .tools/typecheck
ln -sfn ../../operator .tools/typecheck/floxide_operator
ln -sfn ../../worker .tools/typecheck/floxide_worker
MYPYPATH=.tools/typecheck .venv/bin/mypy -p floxide_operator -p floxide_worker
.venv/bin/lint-imports
# Test files run in parallel processes (pytest-xdist), a file's tests in one process and each
# cluster tier in one (tests/conftest.py): most tests wait on servers and worker processes, so
# more processes than cores pay off. FLOXIDE_TEST_PROCESSES=0 runs everything in this process.
.venv/bin/pytest -n "${FLOXIDE_TEST_PROCESSES:-4}" "$@"
