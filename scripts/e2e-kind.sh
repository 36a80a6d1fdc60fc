#!/usr/bin/env bash
# End-to-end check on a local kind cluster: build the images, install the chart, run the examples,
# then take a worker away in the middle of a run, twice, to show that the run still succeeds: once
# killed with SIGKILL (a crash), once deleted (a graceful drain).
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
#   NAMESPACE         namespace of the release and the examples (floxide-system)
#   RELEASE           Helm release name                     (floxide)
#   TIMEOUT           seconds to wait for each run, and for a killed worker to restart (300)
#   HELM_TEST         run `helm test` at the end: 1 or 0     (1)
#   HELM              helm binary                           (.tools/bin/helm, else helm on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

KIND_CLUSTER="${KIND_CLUSTER:-floxide-e2e}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"
IMAGE_TAG="${IMAGE_TAG:-0.1.0}"
BASE_IMAGE="${BASE_IMAGE:-}"
NAMESPACE="${NAMESPACE:-floxide-system}"
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

# -- fault drills ----------------------------------------------------------------------------
# Each drill runs the countdown again and, while it is in the middle, takes one of its two workers
# away; the run must still succeed.
#
# 1. Crash: the worker process gets SIGKILL, so none of its shutdown code runs. The step it held
#    stays claimed in Redis until its lease expires; then a live worker reclaims it. The worker is
#    PID 1 of its container (the image's ENTRYPOINT is `floxide`, with no init in front), and the
#    kernel drops a signal sent to a PID namespace's init from inside that namespace when init has
#    no handler for it: `kubectl exec POD -- sh -c 'kill -9 1'` would do nothing at all. So the
#    signal comes from the pod's kind node (a docker container named like the node), which holds
#    the container's parent PID namespace, at the PID crictl reports there; kubelet then restarts
#    the container, whose last state must show exit code 137 (128 + SIGKILL).
# 2. Graceful drain: the pod is deleted. The worker gets SIGTERM, stops claiming, lets its running
#    step finish within its drain time and hands the rest back to the other worker.

# Reruns the countdown and waits until it is Running with a few steps done.
restart_countdown() {
  local phase progress done_steps deadline
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
    [ "$phase" != Succeeded ] || die "the countdown run finished before a worker could be taken away"
    [ "$phase" != Failed ] || die "the countdown run failed before the drill"
    [ "$SECONDS" -lt "$deadline" ] || die "the countdown run made no progress within ${TIMEOUT}s (phase '${phase}', progress '${progress}')"
    sleep 1
  done
  log "countdown is ${phase} at ${progress}"
}

# Sets VICTIM to one running worker pod, preferably one of the countdown Workflow's (workers carry
# the component label; the Deployment is <workflow>-workers).
VICTIM=""
choose_countdown_worker() {
  local pods pod
  pods=$("${K[@]}" get pods -l app.kubernetes.io/component=worker \
    --field-selector=status.phase=Running -o jsonpath='{.items[*].metadata.name}')
  VICTIM=""
  for pod in $pods; do
    case "$pod" in *countdown*) VICTIM="$pod" && break ;; esac
  done
  if [ -z "$VICTIM" ]; then VICTIM="${pods%% *}"; fi
  [ -n "$VICTIM" ] || die "no running worker pod to take away"
}

countdown_succeeds_anyway() {
  log "waiting for the countdown run to succeed anyway"
  wait_succeeded countdown
  "${K[@]}" get workflowruns
  "${K[@]}" get workflowrun countdown -o jsonpath='{.status.progress}{"  "}{.status.output}{"\n"}' || true
}

log "crash drill: restarting the countdown run"
restart_countdown
choose_countdown_worker
node=$("${K[@]}" get pod "$VICTIM" -o jsonpath='{.spec.nodeName}')
container=$("${K[@]}" get pod "$VICTIM" -o jsonpath='{.status.containerStatuses[0].containerID}')
container="${container#*://}"
[ -n "$node" ] && [ -n "$container" ] || die "worker pod ${VICTIM} has no node or no running container"
restarts=$("${K[@]}" get pod "$VICTIM" -o jsonpath='{.status.containerStatuses[0].restartCount}')
case "$restarts" in '' | *[!0-9]*) restarts=0 ;; esac
pid=$(docker exec "$node" crictl inspect --output go-template --template '{{.info.pid}}' "$container")
case "$pid" in '' | *[!0-9]* | 0 | 1) die "no host PID for container ${container} of pod ${VICTIM} on node ${node}: '${pid}'" ;; esac
log "killing the worker process of pod ${VICTIM} with SIGKILL (PID ${pid} on node ${node})"
docker exec "$node" sh -c "kill -9 ${pid}"
deadline=$((SECONDS + TIMEOUT))
while :; do
  state=$("${K[@]}" get pod "$VICTIM" \
    -o jsonpath='{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].lastState.terminated.exitCode}' \
    2>/dev/null || true)
  now_restarts="${state%% *}"
  exit_code="${state#* }"
  case "$now_restarts" in '' | *[!0-9]*) now_restarts="$restarts" ;; esac
  if [ "$now_restarts" -gt "$restarts" ]; then
    [ "$exit_code" = 137 ] || die "the worker of pod ${VICTIM} ended with exit code '${exit_code}', not 137 (SIGKILL)"
    break
  fi
  [ "$SECONDS" -lt "$deadline" ] || die "the worker of pod ${VICTIM} was not restarted within ${TIMEOUT}s after SIGKILL"
  sleep 1
done
log "the worker of pod ${VICTIM} was killed (exit code 137) and restarted"
countdown_succeeds_anyway

log "drain drill: restarting the countdown run"
restart_countdown
choose_countdown_worker
log "deleting worker pod ${VICTIM} (SIGTERM: the worker drains)"
"${K[@]}" delete pod "$VICTIM" --wait=false
countdown_succeeds_anyway

# -- helm test -------------------------------------------------------------------------------
if [ "$HELM_TEST" = 1 ]; then
  log "helm test ${RELEASE}"
  "$HELM" test "$RELEASE" --kube-context "kind-${KIND_CLUSTER}" --namespace "$NAMESPACE" --logs --timeout 5m
fi

log "end-to-end check passed"
