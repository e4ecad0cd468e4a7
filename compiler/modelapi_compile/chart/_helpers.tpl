{{/*
Templates of the modelapi-compile chart. They read only .Values: every string of the stack
spec arrives as data through values and is printed with quote or toYaml, never as template
text. emit/manifests.py builds the same objects; the build checks that both agree.
*/}}

{{- define "modelapi.fullname" -}}
{{- printf "%s-%s" .root.Values.stack .name -}}
{{- end }}

{{- /* No app.kubernetes.io/instance: Argo CD before 3.0 rewrites it (label tracking). */}}
{{- define "modelapi.selectorLabels" -}}
app.kubernetes.io/name: {{ .name | quote }}
modelapi.dev/stack: {{ .root.Values.stack | quote }}
{{- end }}

{{- define "modelapi.labels" -}}
app.kubernetes.io/component: {{ .workload.component | quote }}
app.kubernetes.io/managed-by: modelapi-compile
app.kubernetes.io/name: {{ .name | quote }}
app.kubernetes.io/part-of: {{ .root.Values.stack | quote }}
modelapi.dev/stack: {{ .root.Values.stack | quote }}
{{- end }}

{{- define "modelapi.metadata" -}}
name: {{ .objectName | quote }}
namespace: {{ .root.Release.Namespace | quote }}
labels:
  {{- include "modelapi.labels" . | nindent 2 }}
{{- with .annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
