{{/*
Monitoring helpers: the ServiceMonitors, the PrometheusRule and the Grafana dashboard.
*/}}

{{/*
Name of the worker's metrics Service; the Prometheus Operator makes it the `job` label.
*/}}
{{- define "form-data.workerMetricsServiceName" -}}
{{- include "form-data.fullname" . }}-worker
{{- end }}

{{/*
PromQL label matchers of the web's series: namespace and job as the ServiceMonitor
produces them (job = the Service name), unless monitoring.prometheusRule.selectors.web is set.
*/}}
{{- define "form-data.monitoring.webSelector" -}}
{{- .Values.monitoring.prometheusRule.selectors.web | default (printf "namespace=%q, job=%q" .Release.Namespace (printf "%s-web" (include "form-data.fullname" .))) }}
{{- end }}

{{/*
PromQL label matchers of the worker's series (see form-data.monitoring.webSelector).
*/}}
{{- define "form-data.monitoring.workerSelector" -}}
{{- .Values.monitoring.prometheusRule.selectors.worker | default (printf "namespace=%q, job=%q" .Release.Namespace (include "form-data.workerMetricsServiceName" .)) }}
{{- end }}

{{/*
runbook_url of an alert. Call with (dict "ctx" $ "anchor" "queue-backing-up").
*/}}
{{- define "form-data.monitoring.runbookUrl" -}}
{{- printf "%s#%s" (.ctx.Values.monitoring.runbookBaseUrl | trimSuffix "#") .anchor }}
{{- end }}

{{/*
True ("true") when KEDA may scale the worker to zero replicas.
*/}}
{{- define "form-data.workerScalesToZero" -}}
{{- $a := .Values.worker.autoscaling }}
{{- if and $a.enabled (eq $a.mode "keda") (eq (int $a.minReplicas) 0) }}true{{ end }}
{{- end }}

{{/*
True ("true") when the ScaledObject gets a fallback: keda.fallback.enabled true, or
auto and the worker may scale to zero.
*/}}
{{- define "form-data.workerKedaFallback" -}}
{{- $f := .Values.worker.autoscaling.keda.fallback }}
{{- if or (eq (toString $f.enabled) "true") (and (eq (toString $f.enabled) "auto") (include "form-data.workerScalesToZero" .)) }}true{{ end }}
{{- end }}

{{/*
Checks of the monitoring values that fail rendering with a clear message.
*/}}
{{- define "form-data.monitoring.validate" -}}
{{- /* The web's /metrics has a port of its own (web.metricsPort), which networkPolicy.metricsFrom alone governs. */}}
{{- end }}

{{/*
labels: of an alert: its severity, the namespace when given (absent() has no labels
to carry it), and monitoring.prometheusRule.additionalAlertLabels.
Call with (dict "ctx" $ "severity" "warning" "namespace" "") and nindent.
*/}}
{{- define "form-data.monitoring.alertLabels" -}}
{{- $own := dict "severity" (toString .severity) }}
{{- with .namespace }}
{{- $_ := set $own "namespace" . }}
{{- end }}
{{- toYaml (merge $own (deepCopy .ctx.Values.monitoring.prometheusRule.additionalAlertLabels)) }}
{{- end }}

{{/*
Namespace of a monitoring object: its override, else the release's.
Call with (dict "ctx" $ "namespace" <override>).
*/}}
{{- define "form-data.monitoring.namespace" -}}
{{- .namespace | default .ctx.Release.Namespace }}
{{- end }}

{{/*
Name of a monitoring object. In a namespace other than the release's (shared by
the releases of several namespaces) it is prefixed with the release namespace.
Call with (dict "ctx" $ "namespace" <override> "name" <name>).
*/}}
{{- define "form-data.monitoring.objectName" -}}
{{- if and .namespace (ne .namespace .ctx.Release.Namespace) }}
{{- printf "%s-%s" .ctx.Release.Namespace .name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- .name }}
{{- end }}
{{- end }}
