{{/* The chart name. */}}
{{- define "batchgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's objects. */}}
{{- define "batchgate.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "batchgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "batchgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the pods. */}}
{{- define "batchgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "batchgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "batchgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "batchgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the control token, if any. */}}
{{- define "batchgate.tokenSecret" -}}
{{- if .Values.control.token.existingSecret }}
{{- .Values.control.token.existingSecret }}
{{- else if .Values.control.token.value }}
{{- printf "%s-control-token" (include "batchgate.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Whether other pods may reach BatchControl: only behind a token or a
NetworkPolicy, or when control.allowOpen says so. Otherwise the control
port listens on the pod's loopback (kubectl port-forward still reaches it),
and settings that would expose it unguarded fail the render.
*/}}
{{- define "batchgate.controlReachable" -}}
{{- if or (include "batchgate.tokenSecret" .) .Values.networkPolicy.enabled .Values.control.allowOpen -}}
true
{{- else -}}
{{- if not .Values.control.separatePort -}}
{{- fail "control.separatePort=false serves BatchControl on the data port, open to every client: set a control token (control.token.existingSecret or control.token.value), or control.allowOpen=true to accept that" -}}
{{- end -}}
{{- if .Values.control.service.enabled -}}
{{- fail "control.service.enabled exposes BatchControl to the cluster: set a control token (control.token.*) or networkPolicy.enabled=true, or control.allowOpen=true to accept an open control plane" -}}
{{- end -}}
false
{{- end -}}
{{- end }}

{{/* batchgate's config file (JSON), from the values. */}}
{{- define "batchgate.config" -}}
{{- $server := dict
  "grpc_addr" (printf "0.0.0.0:%d" (int .Values.ports.grpc))
  "metrics_addr" (printf "0.0.0.0:%d" (int .Values.ports.metrics))
  "health_addr" (printf "0.0.0.0:%d" (int .Values.ports.health))
  "shutdown_grace" .Values.config.shutdownGrace
  "stream_window" (int .Values.config.streamWindow)
  "http2_stream_window" (int .Values.config.http2StreamWindow)
  "http2_connection_window" (int .Values.config.http2ConnectionWindow)
  "max_message_bytes" (int .Values.config.maxMessageBytes)
  "max_pending_bytes" (int64 .Values.config.maxPendingBytes)
  "log_format" .Values.config.logFormat -}}
{{- range $k, $v := .Values.config.limits }}
{{- $_ := set $server $k $v }}
{{- end }}
{{- if .Values.ports.http }}
{{- $_ := set $server "http_addr" (printf "0.0.0.0:%d" (int .Values.ports.http)) }}
{{- end }}
{{- if .Values.control.separatePort }}
{{- $bind := ternary "0.0.0.0" "127.0.0.1" (eq (include "batchgate.controlReachable" .) "true") }}
{{- $_ := set $server "control_addr" (printf "%s:%d" $bind (int .Values.ports.control)) }}
{{- end }}
{{- if include "batchgate.tokenSecret" . }}
{{- $_ := set $server "control_token_file" (printf "/etc/batchgate/token/%s" .Values.control.token.secretKey) }}
{{- end }}
{{- if .Values.tls.enabled }}
{{- $tls := dict "cert_file" "/etc/batchgate/tls/tls.crt" "key_file" "/etc/batchgate/tls/tls.key" }}
{{- if .Values.tls.mutual }}
{{- $_ := set $tls "client_ca_file" "/etc/batchgate/tls/ca.crt" }}
{{- end }}
{{- $_ := set $server "tls" $tls }}
{{- end }}
{{- $_ := include "batchgate.controlReachable" . }}
{{- $config := dict "server" $server "queues" .Values.config.queues }}
{{- if .Values.jobs.enabled }}
{{- $jobs := deepCopy .Values.jobs.settings }}
{{- $_ := set $jobs "path" "/var/lib/batchgate/jobs.sqlite3" }}
{{- if eq .Values.jobs.store "nats" }}
{{- $n := .Values.jobs.nats }}
{{- $nats := dict "url" $n.url "prefix" $n.prefix "ack_wait" $n.ackWait "replicas" $n.replicas }}
{{- if $n.credentialsSecret }}
{{- $_ := set $nats "credentials" (printf "/etc/batchgate/nats/%s" $n.credentialsKey) }}
{{- end }}
{{- $_ := set $jobs "store" "nats" }}
{{- $_ := set $jobs "nats" $nats }}
{{- end }}
{{- $_ := set $config "jobs" $jobs }}
{{- end }}
{{- $config | toPrettyJson }}
{{- end }}
