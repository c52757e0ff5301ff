{{/* Chart name, overridable. */}}
{{- define "sanctum.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of every resource: the release name, or <release>-<chart>. */}}
{{- define "sanctum.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "sanctum.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sanctum.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sanctum
{{- end -}}

{{/* Labels selecting the operator pods. */}}
{{- define "sanctum.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sanctum.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The operator's ServiceAccount. */}}
{{- define "sanctum.serviceAccountName" -}}
{{- default (include "sanctum.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Image reference: pinned by digest when one is given. */}}
{{- define "sanctum.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Settings that values.schema.json cannot express; checked on every render so a bad
combination fails at install, not at run time.
*/}}
{{- define "sanctum.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicas > 1 needs leaderElection.enabled=true: without a Lease every replica would reconcile every tenant" -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) .Values.podDisruptionBudget.enabled (ge (int .Values.podDisruptionBudget.minAvailable) (int .Values.replicas)) -}}
{{- fail "podDisruptionBudget.minAvailable must be less than replicas, or no voluntary disruption (node drain) could ever proceed" -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (or (empty .Values.networkPolicy.apiServer.cidrs) (empty .Values.networkPolicy.aws.cidrs)) -}}
{{- fail "networkPolicy.enabled needs networkPolicy.apiServer.cidrs and networkPolicy.aws.cidrs: without them the operator cannot reach the API server or KMS/S3" -}}
{{- end -}}
{{- end -}}
