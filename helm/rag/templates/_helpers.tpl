{{/*
The chart name (nameOverride wins).
*/}}
{{- define "rag.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every resource: the release name, plus the chart name unless the release name already
contains it (`helm install rag …` gives "rag", not "rag-rag"). Cut to 63 characters: a DNS label.
*/}}
{{- define "rag.fullname" -}}
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
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "rag.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The namespace of every resource.
*/}}
{{- define "rag.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "rag.labels" -}}
helm.sh/chart: {{ include "rag.chart" . }}
{{ include "rag.selectorLabels" . }}
app.kubernetes.io/version: {{ include "rag.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels: only name and instance, which never change over the release's life (a Deployment's
selector is immutable).
*/}}
{{- define "rag.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rag.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "rag.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rag.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image tag: image.tag, else the chart's appVersion (the service version the chart was written for).
*/}}
{{- define "rag.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
The image reference; a digest pins it and wins over the tag.
*/}}
{{- define "rag.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "rag.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
gunicorn's graceful timeout, as services/rag/api/gunicorn_conf.py computes it: drain + request deadline + 5 s.
*/}}
{{- define "rag.gracefulTimeout" -}}
{{- add .Values.server.drainSeconds .Values.server.requestTimeoutSeconds 5 }}
{{- end }}

{{/*
The termination grace period: the preStop pause, then gunicorn's graceful timeout, then 10 s of margin for
the master to reap its workers. Anything shorter lets the kubelet SIGKILL requests gunicorn would finish.
*/}}
{{- define "rag.terminationGracePeriodSeconds" -}}
{{- add .Values.server.preStopSleepSeconds (include "rag.gracefulTimeout" .) 10 }}
{{- end }}

{{/*
The bundle volume's mount point and the directory the init container fills (the image's RAG_BUNDLE_DIR).
*/}}
{{- define "rag.artifactsMount" -}}
/artifacts
{{- end }}
{{- define "rag.bundleDir" -}}
/artifacts/bundle
{{- end }}
