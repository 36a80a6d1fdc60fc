{{/*
Chart name, overridable with nameOverride.
*/}}
{{- define "floxide.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix of every resource: fullnameOverride, or the release name plus the chart name unless
the release name already contains it. Truncated to 63 characters (the DNS label limit); suffixes like
"-operator" are added by callers through "floxide.componentName", which truncates again.
*/}}
{{- define "floxide.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of one component's resources: "<fullname>-<component>", truncated to 63 characters.
Usage: include "floxide.componentName" (list . "operator")
*/}}
{{- define "floxide.componentName" -}}
{{- $root := index . 0 }}
{{- $component := index . 1 }}
{{- printf "%s-%s" (include "floxide.fullname" $root | trunc (int (sub 62 (len $component)))) $component | trimSuffix "-" }}
{{- end }}

{{/*
Chart label value: name-version.
*/}}
{{- define "floxide.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels. Usage: include "floxide.labels" (list . "operator")
*/}}
{{- define "floxide.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "floxide.chart" $root }}
{{ include "floxide.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: floxide
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels, with the component. Usage: include "floxide.selectorLabels" (list . "operator")
*/}}
{{- define "floxide.selectorLabels" -}}
{{- $root := index . 0 }}
{{- $component := index . 1 -}}
app.kubernetes.io/name: {{ include "floxide.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ $component }}
{{- end }}

{{/*
Name of the operator's ServiceAccount.
*/}}
{{- define "floxide.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "floxide.componentName" (list . "operator")) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the workers' ServiceAccount (empty when none is created or named: workers use "default").
*/}}
{{- define "floxide.workerServiceAccountName" -}}
{{- if .Values.worker.serviceAccount.create }}
{{- default (include "floxide.componentName" (list . "worker")) .Values.worker.serviceAccount.name }}
{{- else }}
{{- .Values.worker.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}, with a default tag.
Usage: include "floxide.image" (list .Values.image .Chart.AppVersion)
*/}}
{{- define "floxide.image" -}}
{{- $image := index . 0 }}
{{- $defaultTag := index . 1 }}
{{- $ref := printf "%s:%s" $image.repository (default $defaultTag $image.tag | toString) }}
{{- if $image.digest }}
{{- $ref = printf "%s@%s" $ref $image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/*
Names of the Redis resources.
*/}}
{{- define "floxide.redis.fullname" -}}
{{- include "floxide.componentName" (list . "redis") }}
{{- end }}

{{/*
The Secret the operator reads its Redis connection from (keys "redis-url", "redis-password") and
mirrors into every Workflow's namespace for the workers.
*/}}
{{- define "floxide.redis.connectionSecretName" -}}
{{- include "floxide.componentName" (list . "redis-connection") }}
{{- end }}

{{/*
The Redis URL the operator and the workers use. An external Redis Cluster or Sentinel set-up is
written as redis+cluster://node,node or redis+sentinel://sentinel,sentinel/<master>/<db>
(rediss+... with TLS), with the replica wait as the URL options wait_replicas and wait_timeout_ms:
the URL is all the operator mirrors to the workers (floxide.redis.clients reads it).
*/}}
{{- define "floxide.redis.url" -}}
{{- if .Values.redis.enabled }}
{{- $scheme := ternary "rediss" "redis" (ne (include "floxide.redis.tls" .) "") }}
{{- printf "%s://%s.%s.svc.%s:%d/0" $scheme (include "floxide.redis.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.redis.service.port) }}
{{- else }}
{{- $ext := .Values.redis.external }}
{{- $mode := default "standalone" $ext.mode }}
{{- $scheme := ternary "rediss" "redis" (default false $ext.tls) }}
{{- $url := "" }}
{{- if eq $mode "cluster" }}
{{- if and (empty $ext.url) (empty $ext.nodes) }}
{{- fail "redis.external.nodes (host:port list) or redis.external.url is required when redis.external.mode is cluster" }}
{{- end }}
{{- $url = $ext.url | default (printf "%s+cluster://%s" $scheme (join "," $ext.nodes)) }}
{{- else if eq $mode "sentinel" }}
{{- if empty $ext.sentinels }}
{{- fail "redis.external.sentinels (host:port list) is required when redis.external.mode is sentinel" }}
{{- end }}
{{- $url = printf "%s+sentinel://%s/%s/%d" $scheme (join "," $ext.sentinels) (required "redis.external.masterName is required when redis.external.mode is sentinel" $ext.masterName) (int (default 0 $ext.database)) }}
{{- else }}
{{- $url = required "redis.external.url is required when redis.enabled is false (redis://host:6379/0 or rediss://...)" $ext.url }}
{{- end }}
{{- if gt (int (default 0 $ext.waitReplicas)) 0 }}
{{- $url = printf "%s%swait_replicas=%d&wait_timeout_ms=%d" $url (ternary "&" "?" (contains "?" $url)) (int $ext.waitReplicas) (int (default 1000 $ext.waitTimeoutMs)) }}
{{- end }}
{{- $url }}
{{- end }}
{{- end }}

{{/*
The Secret (name and key) that holds the bundled Redis' password for redis-server itself.
*/}}
{{- define "floxide.redis.passwordSecretName" -}}
{{- default (include "floxide.redis.connectionSecretName" .) .Values.redis.auth.existingSecret }}
{{- end }}

{{- define "floxide.redis.passwordSecretKey" -}}
{{- if .Values.redis.auth.existingSecret }}
{{- .Values.redis.auth.existingSecretPasswordKey }}
{{- else -}}
redis-password
{{- end }}
{{- end }}

{{/*
The existing Secret (name) that holds the Redis password, if the values name one: the bundled Redis'
redis.auth.existingSecret, or an external Redis' redis.external.existingSecret. Empty otherwise.
*/}}
{{- define "floxide.redis.existingPasswordSecret" -}}
{{- ternary .Values.redis.auth.existingSecret .Values.redis.external.existingSecret .Values.redis.enabled }}
{{- end }}

{{- define "floxide.redis.existingPasswordKey" -}}
{{- ternary .Values.redis.auth.existingSecretPasswordKey .Values.redis.external.existingSecretPasswordKey .Values.redis.enabled }}
{{- end }}

{{/*
The Redis password written into the connection Secret, only when no existing Secret holds it:
- bundled Redis, generated password: the value already in the connection Secret (kept on upgrade),
  or 32 random characters on the first install;
- external Redis without a Secret: empty (no AUTH).
With an existing Secret, clients (the operator, the test Pod) read the password from it directly, so
nothing here depends on a lookup: `helm template` renders the same every time (Argo CD, Flux).
*/}}
{{- define "floxide.redis.password" -}}
{{- if and .Values.redis.enabled (not (include "floxide.redis.existingPasswordSecret" .)) }}
{{- $current := lookup "v1" "Secret" .Release.Namespace (include "floxide.redis.connectionSecretName" .) }}
{{- if and $current $current.data (hasKey $current.data "redis-password") }}
{{- index $current.data "redis-password" | b64dec }}
{{- else }}
{{- randAlphaNum 32 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Where clients find the Redis password (an env valueFrom.secretKeyRef): the existing Secret the values
name, else the connection Secret.
*/}}
{{- define "floxide.redis.passwordRef" -}}
{{- $existing := include "floxide.redis.existingPasswordSecret" . -}}
name: {{ default (include "floxide.redis.connectionSecretName" .) $existing }}
key: {{ ternary (include "floxide.redis.existingPasswordKey" .) "redis-password" (ne $existing "") }}
optional: true
{{- end }}

{{/*
Whether the release is missing a Secret it was told to read the Redis password from
("true" or ""). Used by NOTES.txt to warn after install.
*/}}
{{- define "floxide.redis.missingPasswordSecret" -}}
{{- $secretName := ternary .Values.redis.auth.existingSecret .Values.redis.external.existingSecret .Values.redis.enabled }}
{{- if $secretName }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace $secretName }}
{{- if not $secret }}true{{ end }}
{{- end }}
{{- end }}

{{/*
"true" when the operator gives each namespace its own Redis ACL user (redis.acl.namespaceUsers:
auto = with the bundled Redis), empty otherwise.
*/}}
{{- define "floxide.redis.namespaceUsers" -}}
{{- $setting := .Values.redis.acl.namespaceUsers }}
{{- if or (eq (toString $setting) "true") (and (eq (toString $setting) "auto") .Values.redis.enabled) }}true{{ end }}
{{- end }}

{{/*
The operator's rules on the Secrets of its own namespace beyond the namespaced rules: with namespace
users it deletes the Secret of a namespace whose last Workflow is gone.
*/}}
{{- define "floxide.operatorOwnNamespaceRules" -}}
{{- if include "floxide.redis.namespaceUsers" . }}
# Per-namespace Redis users: the Secret holding a namespace's user is deleted with its last Workflow.
- apiGroups: [""]
  resources: [secrets]
  verbs: [delete]
{{- end }}
{{- end }}

{{/*
The namespace the operator watches: empty (all namespaces) when its RBAC is cluster-wide,
the release namespace otherwise.
*/}}
{{- define "floxide.watchNamespace" -}}
{{- if not .Values.rbac.clusterWide }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
The operator's rules on namespaced resources (in a ClusterRole or a Role, by rbac.clusterWide).
*/}}
{{- define "floxide.operatorNamespacedRules" -}}
# Exactly what the operator calls (tests/cluster/test_rbac.py compares it with the API server's audit
# log): no get, update or delete it does not send.
# Workflows, WorkflowRuns and WorkflowSchedules: kopf lists and watches them, patches their
# finalizers and annotations (and Replace, a schedule's active runs' spec.shutdown).
- apiGroups: [floxide.io]
  resources: [workflows, workflowruns, workflowschedules]
  verbs: [list, watch, patch]
# Status: phase, progress, conditions; a schedule's last and next fire time.
- apiGroups: [floxide.io]
  resources: [workflows/status, workflowruns/status, workflowschedules/status]
  verbs: [patch]
# Schedules create WorkflowRuns; ttlSecondsAfterFinished and schedules' history limits delete them.
- apiGroups: [floxide.io]
  resources: [workflowruns]
  verbs: [create, delete]
# One worker Deployment per Workflow: created, its template and replicas patched. Deleting a
# Workflow deletes it through its owner reference (the garbage collector), not the operator.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, create, patch]
# Redis Secret mirroring into Workflow namespaces; spec.redis and spec.inputFrom read Secret and
# ConfigMap keys.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
# Events on Workflows and WorkflowRuns (kopf posts core/v1 Events).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/*
kopf's cluster-scoped scanning (read-only): it notices CRDs appearing and disappearing, and, when it
serves named namespaces (rbac.clusterWide=false), namespaces too.
*/}}
{{- define "floxide.operatorScanningRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if not .Values.rbac.clusterWide }}
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
{{- end }}
