{{/*
The RayJob's name: the release's, cut to 50 characters (KubeRay appends its own suffixes to the cluster's
and the submitter's names, which must stay DNS labels).
*/}}
{{- define "rag-index-build.fullname" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- end }}

{{- define "rag-index-build.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: rag
app.kubernetes.io/component: index-build
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rag-index-build.image" -}}
{{- printf "%s:%s" .Values.image.repository (default (printf "%s-ray" .Chart.AppVersion) .Values.image.tag) }}
{{- end }}

{{/*
What every Ray container needs: somewhere to write (the root filesystem is read-only; Ray keeps its session
in /tmp and a home under HOME) and the build's settings.
*/}}
{{- define "rag-index-build.commonEnv" -}}
- name: HOME
  value: /tmp
{{- range $name, $value := .Values.settings }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{- define "rag-index-build.container" -}}
imagePullPolicy: {{ .Values.image.pullPolicy }}
{{- with .Values.envFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end }}

{{- define "rag-index-build.podSpec" -}}
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
