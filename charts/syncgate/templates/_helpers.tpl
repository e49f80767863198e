{{/* Chart name, overridable. */}}
{{- define "syncgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release name, plus the chart name unless the release already contains it. */}}
{{- define "syncgate.fullname" -}}
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

{{- define "syncgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "syncgate.labels" -}}
helm.sh/chart: {{ include "syncgate.chart" . }}
{{ include "syncgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "syncgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "syncgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "syncgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "syncgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "syncgate.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the JWT secret and publish keys. */}}
{{- define "syncgate.authSecretName" -}}
{{- .Values.auth.existingSecret | default (include "syncgate.fullname" .) }}
{{- end }}

{{/* True when the chart owns a Secret (auth, or the Redis URL). */}}
{{- define "syncgate.createSecret" -}}
{{- if or (not .Values.auth.existingSecret) .Values.redis.url }}true{{ end }}
{{- end }}

{{/* True when the pods get the Redis backplane. */}}
{{- define "syncgate.hasRedis" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret }}true{{ end }}
{{- end }}

{{/* The chart's Secret carries an HS256 secret unless only a JWKS URL is configured. */}}
{{- define "syncgate.ownJWTSecret" -}}
{{- if and (not .Values.auth.existingSecret) (or .Values.auth.jwtSecret (not .Values.auth.jwksUrl)) }}true{{ end }}
{{- end }}

{{- define "syncgate.terminationGracePeriodSeconds" -}}
{{- $drain := add (int .Values.preStopSleepSeconds) (int .Values.gateway.shutdownGraceSeconds) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $drain 10 }}
{{- else }}
{{- $set := int .Values.terminationGracePeriodSeconds }}
{{- if le $set (int $drain) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + gateway.shutdownGraceSeconds (%d), or Kubernetes kills the gateway mid-drain" $set (int $drain)) }}
{{- end }}
{{- $set }}
{{- end }}
{{- end }}

{{/* Settings that render on their own but cannot work together. */}}
{{- define "syncgate.validate" -}}
{{- if and (not (include "syncgate.hasRedis" .)) (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) }}
{{- fail "more than one replica (replicaCount > 1 or autoscaling.enabled) needs redis.url or redis.existingSecret: the in-memory backplane does not connect pods, so clients on one pod would miss events published on another" }}
{{- end }}
{{- if and .Values.redis.url .Values.redis.existingSecret }}
{{- fail "set redis.url or redis.existingSecret, not both" }}
{{- end }}
{{- if and .Values.auth.existingSecret (or .Values.auth.jwtSecret .Values.auth.publishKeys) }}
{{- fail "auth.existingSecret is set: leave auth.jwtSecret and auth.publishKeys empty and put them in that Secret" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not .Values.autoscaling.targetCPUUtilizationPercentage) (not .Values.autoscaling.targetConnectionsPerPod) }}
{{- fail "autoscaling.enabled needs targetCPUUtilizationPercentage or targetConnectionsPerPod" }}
{{- end }}
{{- range .Values.auth.publishKeys }}
{{- if contains "," . }}
{{- fail "auth.publishKeys: a key cannot contain a comma (SYNCGATE_PUBLISH_KEYS is comma-separated)" }}
{{- end }}
{{- end }}
{{- end }}
