{{/*
TLS of the bundled Redis (redis.tls). The certificate Secret holds tls.crt, tls.key and ca.crt:
redis.tls.existingSecret, or the Secret cert-manager writes for the chart's Certificate.
*/}}

{{/*
"true" when the bundled Redis serves TLS only; fails the render on a half-configured redis.tls.
*/}}
{{- define "floxide.redis.tls" -}}
{{- $tls := .Values.redis.tls }}
{{- if and .Values.redis.enabled $tls.enabled }}
{{- if and $tls.existingSecret $tls.certManager.enabled }}
{{- fail "redis.tls: set either redis.tls.existingSecret or redis.tls.certManager.enabled, not both" }}
{{- end }}
{{- if not (or $tls.existingSecret $tls.certManager.enabled) }}
{{- fail "redis.tls.enabled needs a certificate: set redis.tls.existingSecret (a kubernetes.io/tls Secret with ca.crt) or redis.tls.certManager.enabled with redis.tls.certManager.issuerRef.name" }}
{{- end }}
{{- if and $tls.certManager.enabled (not $tls.certManager.issuerRef.name) }}
{{- fail "redis.tls.certManager.issuerRef.name is required with redis.tls.certManager.enabled" }}
{{- end -}}
true
{{- end }}
{{- end }}

{{/*
The Secret with the bundled Redis' certificate, key and CA.
*/}}
{{- define "floxide.redis.tlsSecretName" -}}
{{- default (include "floxide.componentName" (list . "redis-tls")) .Values.redis.tls.existingSecret }}
{{- end }}

{{/*
The DNS names the certificate must cover: the Service's, short to fully qualified.
*/}}
{{- define "floxide.redis.dnsNames" -}}
{{- $name := include "floxide.redis.fullname" . }}
- {{ $name }}
- {{ printf "%s.%s" $name .Release.Namespace }}
- {{ printf "%s.%s.svc" $name .Release.Namespace }}
- {{ printf "%s.%s.svc.%s" $name .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{/*
Where clients find the CA: a volume with only ca.crt of the certificate Secret (never the key),
mounted at /etc/floxide/redis-ca, and FLOXIDE_REDIS_TLS_CA_FILE naming the file. Empty without TLS.
*/}}
{{- define "floxide.redis.caVolume" -}}
{{- if include "floxide.redis.tls" . }}
- name: redis-ca
  secret:
    secretName: {{ include "floxide.redis.tlsSecretName" . }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end }}

{{- define "floxide.redis.caMount" -}}
{{- if include "floxide.redis.tls" . }}
- name: redis-ca
  mountPath: /etc/floxide/redis-ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "floxide.redis.caEnv" -}}
{{- if include "floxide.redis.tls" . }}
- name: FLOXIDE_REDIS_TLS_CA_FILE
  value: /etc/floxide/redis-ca/ca.crt
{{- end }}
{{- end }}
