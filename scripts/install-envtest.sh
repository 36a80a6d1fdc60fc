#!/usr/bin/env bash
# Provides the real control-plane binaries of the cluster test tier (tests/cluster): etcd,
# kube-apiserver, kube-controller-manager and kubectl. Prints the folder that holds them.
#
# KUBEBUILDER_ASSETS (the envtest convention): when it names a folder with etcd, kube-apiserver and
# kube-controller-manager, that folder is used as it is (kubectl is taken from it or from PATH).
# Otherwise the binaries are built once from source through the Go module proxy, with the Go
# modules in tools/envtest/ (k8s.io/kubernetes, go.etcd.io/etcd/server/v3), and cached in
# FLOXIDE_ENVTEST_CACHE (default: ~/.cache/floxide/envtest) with the Go build and module caches,
# so later runs, from any clone, take a second. The first build takes 5-15 minutes on 2 cores.
#
# Idempotent, needs no standard input. Exits non-zero, saying why, when the binaries cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly NEEDED=(etcd kube-apiserver kube-controller-manager)

complete() {
  local dir="$1" binary
  for binary in "${NEEDED[@]}" "${@:2}"; do
    [ -x "$dir/$binary" ] || return 1
  done
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && complete "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

kubernetes="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' tools/envtest/go.mod)"
etcd="$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" { print $3 }' tools/envtest/etcd/go.mod)"
cache="$(realpath -m "${FLOXIDE_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/floxide/envtest}")"
bin="$cache/kubernetes-${kubernetes}-etcd-${etcd}/bin"

if complete "$bin" kubectl; then
  echo "$bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install-envtest: Go is needed to build the API server (or set KUBEBUILDER_ASSETS to a folder" \
    "with etcd, kube-apiserver and kube-controller-manager)" >&2
  exit 1
fi

export GOCACHE="$cache/go-build" GOMODCACHE="$cache/go-mod" GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$bin.partial"
started=$(date +%s)
echo "install-envtest: building kube-apiserver, kube-controller-manager and kubectl ${kubernetes}" \
  "and etcd ${etcd} (once; cached in $cache)" >&2
# The version the binaries report (kube-apiserver's /version, kubectl version): Helm checks charts'
# kubeVersion against it. Without these, it is v0.0.0-master.
minor="$(echo "$kubernetes" | cut -d. -f2)"
version_flags=""
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $package.gitVersion=$kubernetes -X $package.gitMajor=1 -X $package.gitMinor=$minor"
  version_flags+=" -X $package.gitTreeState=clean -X $package.buildDate=1970-01-01T00:00:00Z"
done
(
  cd tools/envtest
  go build -tags providerless -trimpath -ldflags="-s -w$version_flags" -o "$bin.partial/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl
) >&2
(
  cd tools/envtest/etcd
  go build -trimpath -ldflags='-s -w' -o "$bin.partial/etcd" go.etcd.io/etcd/server/v3
) >&2
rm -rf "$bin"
mv "$bin.partial" "$bin"
"$bin/kube-apiserver" --version >&2
echo "install-envtest: built in $(($(date +%s) - started)) s into $bin" >&2
echo "$bin"
