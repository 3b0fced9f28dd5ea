{{/* The release-qualified name of the chart's objects. */}}
{{- define "wizdata.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* One role's object name: <fullname>-<role>. */}}
{{- define "wizdata.roleName" -}}
{{- printf "%s-%s" (include "wizdata.fullname" .root) .role | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wizdata.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "wizdata.roleSelector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "wizdata.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* A role's headless Service: its DNS name answers with every ready pod's
address, so callers spread their calls over every pod. */}}
{{- define "wizdata.podsName" -}}
{{- printf "%s-pods" (include "wizdata.roleName" .) -}}
{{- end -}}

{{/* The in-cluster URL a role is called at: its headless Service, which
the gateway and the services resolve again every refresh interval. */}}
{{- define "wizdata.roleUrl" -}}
{{- printf "http://%s:%v" (include "wizdata.podsName" .) .root.Values.ports.grpc -}}
{{- end -}}

{{- define "wizdata.secretName" -}}
{{- default (printf "%s-secrets" (include "wizdata.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}
