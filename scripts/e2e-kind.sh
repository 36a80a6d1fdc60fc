#!/usr/bin/env bash
# End-to-end check on a local kind cluster: build the images, install the chart, run the examples,
# and kill a worker in the middle of a run to show that the run still succeeds.
#
#   scripts/e2e-kind.sh            # creates the cluster, runs everything, deletes the cluster it created
#   scripts/e2e-kind.sh --keep     # leaves the cluster (and the release) for a look around
#
# Needs docker, kind and kubectl; helm is .tools/bin/helm (scripts/install-helm.sh) or helm on PATH.
# Environment (all optional):
#   KIND_CLUSTER      cluster name                         (floxide-e2e)
#   KIND_NODE_IMAGE   kind node image, e.g. kindest/node:v1.30.0   (kind's default)
#   IMAGE_TAG         tag of floxide and floxide-examples   (0.1.0)
#   BASE_IMAGE        base image of the floxide image       (the Dockerfile's default)
#   NAMESPACE         namespace of the release and the examples (floxide)
#   RELEASE           Helm release name                     (floxide)
#   TIMEOUT           seconds to wait for each run          (300)
#   HELM_TEST         run `helm test` at the end: 1 or 0     (1)
#   HELM              helm binary                           (.tools/bin/helm, else helm on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

KIND_CLUSTER="${KIND_CLUSTER:-floxide-e2e}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"
IMAGE_TAG="${IMAGE_TAG:-0.1.0}"
BASE_IMAGE="${BASE_IMAGE:-}"
NAMESPACE="${NAMESPACE:-floxide}"
RELEASE="${RELEASE:-floxide}"
TIMEOUT="${TIMEOUT:-300}"
HELM_TEST="${HELM_TEST:-1}"

FLOXIDE_IMAGE="floxide:${IMAGE_TAG}"
EXAMPLES_IMAGE="floxide-examples:${IMAGE_TAG}"
# The image the example Workflows name (examples/k8s/workflow*.yaml).
MANIFEST_EXAMPLES_IMAGE="floxide-examples:0.1.0"

KEEP=0
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "e2e-kind: unknown argument: $arg (use --keep or --help)" >&2
      exit 2
      ;;
  esac
done

log() { printf '\n[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "FAILED: $*"
  exit 1
}

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required (not found on PATH)"; }
need docker
need kind
need kubectl
if [ -n "${HELM:-}" ]; then
  need "$HELM"
elif [ -x .tools/bin/helm ] || bash scripts/install-helm.sh; then
  HELM="$PWD/.tools/bin/helm"
else
  need helm
  HELM="$(command -v helm)"
fi

KUBECTL=(kubectl --context "kind-${KIND_CLUSTER}")
K=("${KUBECTL[@]}" --namespace "$NAMESPACE")

CREATED_CLUSTER=0
finish() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    diagnose || true
  fi
  if [ "$CREATED_CLUSTER" = 1 ] && [ "$KEEP" = 0 ]; then
    log "deleting kind cluster ${KIND_CLUSTER} (use --keep to leave it)"
    kind delete cluster --name "$KIND_CLUSTER" || true
  elif [ "$KEEP" = 1 ]; then
    log "cluster kept: kubectl --context kind-${KIND_CLUSTER} --namespace ${NAMESPACE} get workflowruns"
  fi
  exit "$status"
}
diagnose() {
  log "diagnostics"
  "${KUBECTL[@]}" get workflows,workflowruns,deployments,pods --all-namespaces -o wide || true
  "${K[@]}" describe workflowruns || true
  "${K[@]}" get events --sort-by=.lastTimestamp | tail -n 40 || true
  "${K[@]}" logs "deployment/${RELEASE}-operator" --tail=80 || true
}
trap finish EXIT

# -- cluster ---------------------------------------------------------------------------------
if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
  log "using the existing kind cluster ${KIND_CLUSTER}"
else
  log "creating kind cluster ${KIND_CLUSTER}"
  create=(kind create cluster --name "$KIND_CLUSTER" --wait 180s)
  if [ -n "$KIND_NODE_IMAGE" ]; then create+=(--image "$KIND_NODE_IMAGE"); fi
  "${create[@]}"
  CREATED_CLUSTER=1
fi

# -- images ----------------------------------------------------------------------------------
log "building ${FLOXIDE_IMAGE} and ${EXAMPLES_IMAGE}"
build=(docker build -t "$FLOXIDE_IMAGE")
if [ -n "$BASE_IMAGE" ]; then build+=(--build-arg "BASE_IMAGE=${BASE_IMAGE}"); fi
"${build[@]}" .
docker build -f examples/k8s/Dockerfile --build-arg "FLOXIDE_IMAGE=${FLOXIDE_IMAGE}" -t "$EXAMPLES_IMAGE" .

log "loading the images into ${KIND_CLUSTER}"
kind load docker-image "$FLOXIDE_IMAGE" "$EXAMPLES_IMAGE" --name "$KIND_CLUSTER"

# -- chart -----------------------------------------------------------------------------------
log "installing the chart (release ${RELEASE}, namespace ${NAMESPACE}, bundled Redis)"
"$HELM" upgrade --install "$RELEASE" helm/floxide \
  --kube-context "kind-${KIND_CLUSTER}" \
  --namespace "$NAMESPACE" --create-namespace \
  --set fullnameOverride="$RELEASE" \
  --set image.tag="$IMAGE_TAG" \
  --set tests.image.tag="$IMAGE_TAG" \
  --set redis.enabled=true \
  --wait --timeout 5m
"${KUBECTL[@]}" wait --for=condition=Established --timeout=60s \
  crd/workflows.floxide.io crd/workflowruns.floxide.io

# -- examples --------------------------------------------------------------------------------
# Applies example manifests (files or directories); when IMAGE_TAG is not the manifests' tag, the
# Workflows are pointed at the image this run built.
apply_examples() {
  local args=() path
  if [ "$EXAMPLES_IMAGE" = "$MANIFEST_EXAMPLES_IMAGE" ]; then
    for path in "$@"; do args+=(-f "$path"); done
    "${K[@]}" apply "${args[@]}"
    return
  fi
  for path in "$@"; do
    if [ -d "$path" ]; then args+=("${path%/}"/*.yaml); else args+=("$path"); fi
  done
  for path in "${args[@]}"; do
    sed "s|image: ${MANIFEST_EXAMPLES_IMAGE}|image: ${EXAMPLES_IMAGE}|" "$path"
    printf -- '---\n'
  done | "${K[@]}" apply -f -
}

wait_succeeded() {
  local run="$1"
  "${K[@]}" wait --for=jsonpath='{.status.phase}'=Succeeded "workflowrun/${run}" --timeout="${TIMEOUT}s" \
    || die "workflowrun/${run} did not reach Succeeded within ${TIMEOUT}s"
}

log "applying examples/k8s/"
apply_examples examples/k8s/

runs=$("${K[@]}" get workflowruns -o jsonpath='{.items[*].metadata.name}')
[ -n "$runs" ] || die "no WorkflowRun was created from examples/k8s/"
for run in $runs; do
  log "waiting for workflowrun/${run} to succeed"
  wait_succeeded "$run"
done
"${K[@]}" get workflowruns

# -- fault drill -----------------------------------------------------------------------------
# Run the countdown again and kill one of its workers while it is in the middle: the step it held
# is reclaimed by the other worker once its lease expires, and the run still succeeds.
log "fault drill: restarting the countdown run"
"${K[@]}" delete -f examples/k8s/run-countdown.yaml --ignore-not-found --wait=true
apply_examples examples/k8s/run-countdown.yaml

log "waiting for the countdown run to be Running with some progress"
deadline=$((SECONDS + TIMEOUT))
while :; do
  phase=$("${K[@]}" get workflowrun countdown -o jsonpath='{.status.phase}' 2>/dev/null || true)
  progress=$("${K[@]}" get workflowrun countdown -o jsonpath='{.status.progress}' 2>/dev/null || true)
  done_steps="${progress%%/*}"
  case "$done_steps" in '' | *[!0-9]*) done_steps=0 ;; esac
  if [ "$phase" = Running ] && [ "$done_steps" -ge 3 ]; then break; fi
  [ "$phase" != Succeeded ] || die "the countdown run finished before a worker could be killed"
  [ "$phase" != Failed ] || die "the countdown run failed before the drill"
  [ "$SECONDS" -lt "$deadline" ] || die "the countdown run made no progress within ${TIMEOUT}s (phase '${phase}', progress '${progress}')"
  sleep 1
done
log "countdown is ${phase} at ${progress}"

# One worker pod, preferably one of the countdown Workflow's (workers carry the component label).
pods=$("${K[@]}" get pods -l app.kubernetes.io/component=worker \
  --field-selector=status.phase=Running -o jsonpath='{.items[*].metadata.name}')
victim=""
for pod in $pods; do
  case "$pod" in *countdown*) victim="$pod" && break ;; esac
done
if [ -z "$victim" ]; then victim="${pods%% *}"; fi
[ -n "$victim" ] || die "no running worker pod to delete"
log "deleting worker pod ${victim}"
"${K[@]}" delete pod "$victim" --wait=false

log "waiting for the countdown run to succeed anyway"
wait_succeeded countdown
"${K[@]}" get workflowruns
"${K[@]}" get workflowrun countdown -o jsonpath='{.status.progress}{"  "}{.status.output}{"\n"}' || true

# -- helm test -------------------------------------------------------------------------------
if [ "$HELM_TEST" = 1 ]; then
  log "helm test ${RELEASE}"
  "$HELM" test "$RELEASE" --kube-context "kind-${KIND_CLUSTER}" --namespace "$NAMESPACE" --logs --timeout 5m
fi

log "end-to-end check passed"
