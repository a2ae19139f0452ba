{{/*
Helpers. Every helper that names or labels a component takes a dict:
  root  the chart root ($)
  name  the component (segmenter, reliability, agent, trainer, otel-collector, artifacts, tls)
*/}}

{{/* Name of a component's objects: <release>-<component>, at most 63 characters. */}}
{{- define "purify.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select a component's pods (never change them after install). */}}
{{- define "purify.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* All labels of a component's objects. */}}
{{- define "purify.labels" -}}
{{ include "purify.selectorLabels" . }}
app.kubernetes.io/part-of: purify
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* Name of the Secret holding tls.crt, tls.key and ca.crt (takes the root). */}}
{{- define "purify.tlsSecret" -}}
{{- if .Values.tls.existingSecret -}}
{{ .Values.tls.existingSecret }}
{{- else -}}
{{ printf "%s-tls" .Release.Name }}
{{- end -}}
{{- end -}}

{{/* OTLP endpoint the services send to (takes the root). */}}
{{- define "purify.otlpEndpoint" -}}
{{- if .Values.telemetry.endpoint -}}
{{ .Values.telemetry.endpoint }}
{{- else -}}
{{ printf "http://%s-otel-collector:4318" .Release.Name }}
{{- end -}}
{{- end -}}

{{/*
Health probe handler of a service (dict root, name, port): Kubernetes' native
gRPC probe (grpc.health.v1) in plaintext; with TLS, which the native probe
cannot speak, the image's probe script run inside the container.
*/}}
{{- define "purify.probeHandler" -}}
{{- if .root.Values.tls.enabled -}}
exec:
  command: ["node", "libs/runtime/dist/healthcheck.js", {{ .name | quote }}]
{{- else -}}
grpc:
  port: {{ .port }}
{{- end -}}
{{- end -}}
