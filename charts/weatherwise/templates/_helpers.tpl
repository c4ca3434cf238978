{{/* The release's common labels. */}}
{{- define "ww.labels" -}}
app.kubernetes.io/part-of: weatherwise
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The labels the operator puts on every pod it creates (issuers, chat pods). */}}
{{- define "ww.operatorWorkloadLabels" -}}
app.kubernetes.io/part-of: weatherwise
app.kubernetes.io/managed-by: ww-operator
{{- end }}

{{- define "ww.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "ww.operatorImage" -}}
{{ .Values.operator.image.repository }}:{{ .Values.operator.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "ww.backendsSecret" -}}
{{ .Values.backends.existingSecret | default (printf "%s-backends" .Release.Name) }}
{{- end }}

{{- define "ww.issuerRedisSecret" -}}
{{ .Values.backends.issuerRedis.existingSecret | default (printf "%s-issuer-redis" .Release.Name) }}
{{- end }}

{{- define "ww.jwtSecret" -}}
{{ .Values.jwt.existingSecret | default (printf "%s-jwt" .Release.Name) }}
{{- end }}

{{/* Which roles need Redis (as `ww serve` requires it). */}}
{{- define "ww.redisRoles" -}}
auth weather mission board
{{- end }}

{{/* The environment every `ww` container shares: backends, tokens, telemetry. */}}
{{- define "ww.commonEnv" -}}
- name: WW_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ include "ww.backendsSecret" . }}, key: database-url}}
- name: WW_KAFKA_BROKERS
  valueFrom: {secretKeyRef: {name: {{ include "ww.backendsSecret" . }}, key: kafka-brokers}}
- name: WW_JWT_KEYS
  valueFrom: {secretKeyRef: {name: {{ include "ww.jwtSecret" . }}, key: keys}}
{{- with .Values.jwt.activeKid }}
- name: WW_JWT_ACTIVE_KID
  value: {{ . | quote }}
{{- end }}
- name: WW_KAFKA_PREFIX
  value: {{ .Values.backends.kafka.prefix | quote }}
- name: WW_KAFKA_PARTITIONS
  value: {{ .Values.backends.kafka.partitions | quote }}
- name: WW_KAFKA_REPLICATION_FACTOR
  value: {{ .Values.backends.kafka.replicationFactor | quote }}
- name: WW_KAFKA_MIN_INSYNC_REPLICAS
  value: {{ .Values.backends.kafka.minInsyncReplicas | quote }}
- name: WW_TRUSTED_PROXIES
  value: {{ .Values.trustedProxies | quote }}
- name: WW_LOG_FORMAT
  value: json
{{- end }}

{{/* The pod and container security settings of every workload. */}}
{{- define "ww.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}
