{{/*
The alerting rules of the PrometheusRule (a YAML list, unindented), followed by
monitoring.prometheusRule.extraRules. Every selector is scoped to this release
(namespace + job, as the ServiceMonitors produce them). Gauges every worker
reports (the queue depths) are aggregated with max, counters with sum.
Prometheus templates in the annotations are kept away from Helm with {{` ... `}}.
*/}}
{{- define "form-data.monitoring.alertRules" -}}
{{- $pr := .Values.monitoring.prometheusRule }}
{{- $a := $pr.alerts }}
{{- $web := include "form-data.monitoring.webSelector" . }}
{{- $worker := include "form-data.monitoring.workerSelector" . }}
{{- $formQueue := .Values.config.SQS_FORM_DATA_QUEUE_NAME }}
{{- $invalidQueue := .Values.config.SQS_INVALID_MESAGES_QUEUE_NAME }}
{{- if .Values.worker.enabled }}
{{- with $a.queueBackingUp }}
{{- if .enabled }}
- alert: FormDataQueueBackingUp
  expr: |-
    max by (namespace, queue) (
      form_data_sqs_messages_visible{ {{- $worker }}, queue={{ $formQueue | quote }}}
    ) > {{ .threshold }}
  for: {{ .for }}
  labels:
    {{- include "form-data.monitoring.alertLabels" (dict "ctx" $ "severity" .severity) | nindent 4 }}
  annotations:
    summary: {{ printf "The form queue %s is backing up" $formQueue | quote }}
    description: >-
      {{`{{ $value }}`}} messages are waiting on {{ $formQueue }} in {{`{{ $labels.namespace }}`}}
      (more than {{ .threshold }} for {{ .for }}): the workers do not keep up, or do not poll.
    runbook_url: {{ include "form-data.monitoring.runbookUrl" (dict "ctx" $ "anchor" "queue-backing-up") }}
{{- end }}
{{- end }}
{{- with $a.oldestMessageTooOld }}
{{- if .enabled }}
- alert: FormDataOldestMessageTooOld
  expr: |-
    max by (namespace) (
      max_over_time(form_data_worker_oldest_message_age_seconds{ {{- $worker }}}[{{ .window }}])
    ) > {{ .thresholdSeconds }}
  for: {{ .for }}
  labels:
    {{- include "form-data.monitoring.alertLabels" (dict "ctx" $ "severity" .severity) | nindent 4 }}
  annotations:
    summary: Forms wait too long on the form queue before they are stored
    description: >-
      The oldest message the workers received in {{`{{ $labels.namespace }}`}} was sent
      {{`{{ $value | humanizeDuration }}`}} ago (more than {{ .thresholdSeconds }} s for {{ .for }}):
      a backlog, or messages retried again and again. SQS deletes messages older than the
      queue's retention period.
    runbook_url: {{ include "form-data.monitoring.runbookUrl" (dict "ctx" $ "anchor" "oldest-message-too-old") }}
{{- end }}
{{- end }}
{{- with $a.invalidMessages }}
{{- if .enabled }}
- alert: FormDataInvalidMessages
  expr: |-
    (
      max by (namespace, queue) (
        form_data_sqs_messages_visible{ {{- $worker }}, queue={{ $invalidQueue | quote }}}
      ) > 0
    )
    or on (namespace)
    (
      sum by (namespace) (
        increase(form_data_worker_invalid_messages_total{ {{- $worker }}}[{{ .window }}])
      ) > 0
    )
  for: {{ .for }}
  labels:
    {{- include "form-data.monitoring.alertLabels" (dict "ctx" $ "severity" .severity) | nindent 4 }}
  annotations:
    summary: {{ printf "Messages arrive on the invalid queue %s" $invalidQueue | quote }}
    description: >-
      {{`{{ $value }}`}} messages: visible on {{ $invalidQueue }}, or routed there by the workers in the
      last {{ .window }}. The worker moves messages it cannot store (not JSON, no data, failing the
      form schema); SQS's redrive policy moves messages received too often, valid forms included.
    runbook_url: {{ include "form-data.monitoring.runbookUrl" (dict "ctx" $ "anchor" "invalid-messages") }}
{{- end }}
{{- end }}
{{- with $a.workerNotPolling }}
{{- if .enabled }}
- alert: FormDataWorkerNotPolling
  expr: |-
    (
      form_data_worker_last_poll_age_seconds{ {{- $worker }}} > {{ .thresholdSeconds }}
    )
    unless on (instance)
    (
      form_data_worker_dependency_up{ {{- $worker }}, dependency="database"} == 0
    )
  for: {{ .for }}
  labels:
    {{- include "form-data.monitoring.alertLabels" (dict "ctx" $ "severity" .severity) | nindent 4 }}
  annotations:
    summary: {{`"Worker {{ $labels.pod }} does not receive from SQS"`}}
    description: >-
      Worker {{`{{ $labels.pod }}`}} in {{`{{ $labels.namespace }}`}} last received from SQS
      {{`{{ $value | humanizeDuration }}`}} ago (more than {{ .thresholdSeconds }} s for {{ .for }})
      while its database answers: most likely SQS refuses or times out its ReceiveMessage calls.
    runbook_url: {{ include "form-data.monitoring.runbookUrl" (dict "ctx" $ "anchor" "worker-not-polling") }}
{{- end }}
{{- end }}
{{- with $a.workerDown }}
{{- if .enabled }}
- alert: FormDataWorkerDown
  {{- if include "form-data.workerScalesToZero" $ }}
  # KEDA may scale the worker to zero, so no target is normal: only
  # targets that exist and all fail count.
  expr: |-
    sum by (namespace) (up{ {{- $worker }}}) == 0
  {{- else }}
  expr: |-
    absent(up{ {{- $worker }}} == 1)
  {{- end }}
  for: {{ .for }}
  labels:
    {{- include "form-data.monitoring.alertLabels" (dict "ctx" $ "severity" .severity "namespace" $.Release.Namespace) | nindent 4 }}
  annotations:
    summary: No worker of {{ include "form-data.fullname" $ }} answers Prometheus
    description: >-
      Prometheus has scraped no worker of {{ include "form-data.fullname" $ }} in {{ $.Release.Namespace }}
      successfully for {{ .for }}: no worker pod runs, or none serves /metrics. Nothing stores forms.
    runbook_url: {{ include "form-data.monitoring.runbookUrl" (dict "ctx" $ "anchor" "worker-down") }}
{{- end }}
{{- end }}
{{- with $a.databaseDown }}
{{- if .enabled }}
- alert: FormDataDatabaseDown
  expr: |-
    max by (namespace) (
      form_data_worker_dependency_up{ {{- $worker }}, dependency="database"}
    ) == 0
  for: {{ .for }}
  labels:
    {{- include "form-data.monitoring.alertLabels" (dict "ctx" $ "severity" .severity) | nindent 4 }}
  annotations:
    summary: The workers cannot reach PostgreSQL
    description: >-
      No worker in {{`{{ $labels.namespace }}`}} reached the database at its last attempt, for {{ .for }}.
      Forms are still accepted and wait on SQS; the workers stop polling until the database answers.
    runbook_url: {{ include "form-data.monitoring.runbookUrl" (dict "ctx" $ "anchor" "database-down") }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.web.enabled }}
{{- with $a.webErrorRate }}
{{- if .enabled }}
- alert: FormDataWebErrorRate
  expr: |-
    sum by (namespace) (
      rate(form_data_http_requests_total{ {{- $web }}, route="/form/", status=~"5.."}[{{ .window }}])
    )
    /
    sum by (namespace) (
      rate(form_data_http_requests_total{ {{- $web }}, route="/form/"}[{{ .window }}])
    )
    > {{ .ratio }}
  for: {{ .for }}
  labels:
    {{- include "form-data.monitoring.alertLabels" (dict "ctx" $ "severity" .severity) | nindent 4 }}
  annotations:
    summary: Form submissions fail with 5xx
    description: >-
      {{`{{ $value | humanizePercentage }}`}} of the requests to /form/ in {{`{{ $labels.namespace }}`}}
      were answered with a 5xx over {{ .window }} (more than {{ .ratio }} for {{ .for }}).
    runbook_url: {{ include "form-data.monitoring.runbookUrl" (dict "ctx" $ "anchor" "web-5xx-rate") }}
{{- end }}
{{- end }}
{{- with $a.enqueueFailures }}
{{- if .enabled }}
- alert: FormDataEnqueueFailures
  expr: |-
    sum by (namespace) (
      increase(form_data_forms_enqueue_failed_total{ {{- $web }}}[{{ .window }}])
    ) > {{ .threshold }}
  for: {{ .for }}
  labels:
    {{- include "form-data.monitoring.alertLabels" (dict "ctx" $ "severity" .severity) | nindent 4 }}
  annotations:
    summary: The web cannot put forms on SQS
    description: >-
      {{`{{ $value | humanize }}`}} forms were answered 503 in {{`{{ $labels.namespace }}`}} over the last
      {{ .window }} because SQS did not take them; the users must submit again.
    runbook_url: {{ include "form-data.monitoring.runbookUrl" (dict "ctx" $ "anchor" "enqueue-failures") }}
{{- end }}
{{- end }}
{{- with $a.webDown }}
{{- if .enabled }}
- alert: FormDataWebDown
  expr: |-
    absent(up{ {{- $web }}} == 1)
  for: {{ .for }}
  labels:
    {{- include "form-data.monitoring.alertLabels" (dict "ctx" $ "severity" .severity "namespace" $.Release.Namespace) | nindent 4 }}
  annotations:
    summary: No web pod of {{ include "form-data.fullname" $ }} answers Prometheus
    description: >-
      Prometheus has scraped no web pod of {{ include "form-data.fullname" $ }} in {{ $.Release.Namespace }}
      successfully for {{ .for }}: no web pod runs, or none serves /metrics. Forms are likely refused.
    runbook_url: {{ include "form-data.monitoring.runbookUrl" (dict "ctx" $ "anchor" "web-down") }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.web.enabled .Values.worker.enabled }}
{{- with $a.formsNotStored }}
{{- if .enabled }}
- alert: FormDataFormsNotStored
  # The web's accepted forms against the workers' stores: it needs no worker
  # series, so it fires when no worker exists at all. A worker started from zero
  # may store before its first scrape; "unless ... offset" counts a stored
  # series new within the window with a value above 0, which increase() cannot see.
  expr: |-
    (
      sum by (namespace) (
        increase(form_data_forms_accepted_total{ {{- $web }}}[{{ .window }}])
      ) > {{ .threshold }}
    )
    unless on (namespace)
    (
      sum by (namespace) (
        increase(form_data_worker_messages_total{ {{- $worker }}, outcome=~"stored|duplicate"}[{{ .window }}])
      ) > 0
      or on (namespace)
      count by (namespace) (
        form_data_worker_messages_total{ {{- $worker }}, outcome=~"stored|duplicate"} > 0
        unless
        form_data_worker_messages_total{ {{- $worker }}, outcome=~"stored|duplicate"} offset {{ .window }}
      )
    )
  for: {{ .for }}
  labels:
    {{- include "form-data.monitoring.alertLabels" (dict "ctx" $ "severity" .severity) | nindent 4 }}
  annotations:
    summary: Forms are accepted but nothing stores them
    description: >-
      The web in {{`{{ $labels.namespace }}`}} accepted {{`{{ $value | humanize }}`}} forms over the last
      {{ .window }} and no worker stored one (for {{ .for }}): no worker runs, or none can store.
      The forms wait on {{ $formQueue }} until its retention period deletes them.
    runbook_url: {{ include "form-data.monitoring.runbookUrl" (dict "ctx" $ "anchor" "forms-not-stored") }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.worker.enabled .Values.worker.autoscaling.enabled (eq .Values.worker.autoscaling.mode "keda") }}
{{- with $a.scalerErrors }}
{{- if .enabled }}
{{- $threshold := .threshold }}
{{- if eq (toString $threshold) "" }}
{{- $threshold = sub (int $.Values.worker.autoscaling.keda.fallback.failureThreshold) 1 | max 0 }}
{{- end }}
- alert: FormDataScalerErrors
  expr: |-
    sum (
      increase(keda_scaled_object_errors_total{ {{- .selector | default (printf "exported_namespace=%q, scaledObject=%q" $.Release.Namespace (include "form-data.workerMetricsServiceName" $)) }}}[{{ .window }}])
    ) > {{ $threshold }}
  for: {{ .for }}
  labels:
    {{- include "form-data.monitoring.alertLabels" (dict "ctx" $ "severity" .severity "namespace" $.Release.Namespace) | nindent 4 }}
  annotations:
    summary: KEDA cannot read the form queue of {{ include "form-data.fullname" $ }}
    description: >-
      KEDA's scaler of the ScaledObject {{ include "form-data.workerMetricsServiceName" $ }} in {{ $.Release.Namespace }}
      failed {{`{{ $value | humanize }}`}} times over the last {{ .window }}: it cannot scale the worker on queue
      depth; with the fallback on it holds the fallback replicas and stops counting errors, so this alert resolves
      {{ .window }} after the failures began even if they go on (see the ScaledObject's Fallback condition).
    runbook_url: {{ include "form-data.monitoring.runbookUrl" (dict "ctx" $ "anchor" "scaler-errors") }}
{{- end }}
{{- end }}
{{- end }}
{{- with $pr.extraRules }}
{{- toYaml . | nindent 0 }}
{{- end }}
{{- end }}
