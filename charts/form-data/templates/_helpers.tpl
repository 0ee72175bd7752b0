{{/*
Chart name, truncated to the 63 characters of a DNS label.
*/}}
{{- define "form-data.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release name + chart name, unless the release name already holds it.
Room is left for the longest component suffix ("-migrations").
*/}}
{{- define "form-data.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
helm.sh/chart label value.
*/}}
{{- define "form-data.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource. Call with (dict "ctx" $ "component" "web").
*/}}
{{- define "form-data.labels" -}}
{{- $ctx := .ctx -}}
helm.sh/chart: {{ include "form-data.chart" $ctx }}
{{ include "form-data.selectorLabels" . }}
app.kubernetes.io/version: {{ $ctx.Values.image.tag | default $ctx.Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: {{ $ctx.Values.partOf | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: name + instance + component, so web and worker never share one.
*/}}
{{- define "form-data.selectorLabels" -}}
app.kubernetes.io/name: {{ include "form-data.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Image reference: repository@digest when a digest is given, else repository:tag.
*/}}
{{- define "form-data.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
The ServiceAccount of one component (one identity, so one IAM role, each):
<name or fullname>-<component> when the chart makes them; else
serviceAccount.<component>.name, or serviceAccount.name for all.
Call with (dict "ctx" $ "component" "web").
*/}}
{{- define "form-data.serviceAccountName" -}}
{{- $sa := .ctx.Values.serviceAccount }}
{{- $own := index $sa .component }}
{{- if $sa.create }}
{{- printf "%s-%s" (default (include "form-data.fullname" .ctx) $sa.name) .component }}
{{- else }}
{{- required (printf "serviceAccount.%s.name or serviceAccount.name is required when serviceAccount.create is false" .component) (default $sa.name $own.name) }}
{{- end }}
{{- end }}

{{/*
The secret settings of one component, env name -> {value: inline value, key: key of existingSecret}:
the web's UI secrets, the worker's own DATABASE_URL (secrets.WORKER_DATABASE_URL, else DATABASE_URL;
database.workerSecretKey in existingSecret), and the AWS keys and SENTRY_DSN of both. The migrations'
owner URL is in a Secret of their own (migrations-job.yaml). Call with (dict "ctx" $ "component" "web").
*/}}
{{- define "form-data.componentSecrets" -}}
{{- $s := .ctx.Values.secrets }}
{{- $out := dict }}
{{- if eq .component "web" }}
{{- $_ := set $out "UI_SECRET" (dict "value" $s.UI_SECRET "key" "UI_SECRET") }}
{{- $_ := set $out "UI_SECRET_NEXT" (dict "value" $s.UI_SECRET_NEXT "key" "UI_SECRET_NEXT") }}
{{- else }}
{{- $_ := set $out "DATABASE_URL" (dict "value" (default $s.DATABASE_URL $s.WORKER_DATABASE_URL) "key" .ctx.Values.database.workerSecretKey) }}
{{- end }}
{{- range $name := list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" "SENTRY_DSN" }}
{{- $_ := set $out $name (dict "value" (index $s $name) "key" $name) }}
{{- end }}
{{- $out | toJson }}
{{- end }}

{{/*
The Secret a component's env entries refer to: existingSecret, else <fullname>-<component>.
Call with (dict "ctx" $ "component" "web").
*/}}
{{- define "form-data.secretName" -}}
{{- default (printf "%s-%s" (include "form-data.fullname" .ctx) .component) .ctx.Values.existingSecret }}
{{- end }}

{{/*
The env entries of a component from its Secret. With existingSecret every entry is referenced (the
AWS keys, SENTRY_DSN and UI_SECRET_NEXT optional); with inline secrets only those with a value.
Call with (dict "ctx" $ "component" "web").
*/}}
{{- define "form-data.secretEnvs" -}}
{{- $ctx := .ctx }}
{{- $name := include "form-data.secretName" . }}
{{- range $env, $entry := include "form-data.componentSecrets" . | fromJson }}
{{- if or $ctx.Values.existingSecret $entry.value }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ ternary $entry.key $env (not (empty $ctx.Values.existingSecret)) }}
      {{- if and $ctx.Values.existingSecret (or (hasPrefix "AWS_" $env) (eq $env "SENTRY_DSN") (eq $env "UI_SECRET_NEXT")) }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The oldest KEDA the chart supports: the first release that applies a ScaledObject's fallback at zero
replicas (v2.19.0, kedacore/keda#7244).
*/}}
{{- define "form-data.kedaMinimumVersion" -}}2.19.0{{- end }}

{{/*
Checks that fail rendering with a clear message.
*/}}
{{- define "form-data.validate" -}}
{{- $s := .Values.secrets }}
{{- if and .Values.existingSecret (or $s.DATABASE_URL $s.WORKER_DATABASE_URL $s.UI_SECRET $s.UI_SECRET_NEXT $s.AWS_ACCESS_KEY_ID $s.AWS_SECRET_ACCESS_KEY $s.SENTRY_DSN) }}
{{- fail "existingSecret and inline secrets.* are mutually exclusive: put DATABASE_URL, UI_SECRET (and any AWS keys) into the existing Secret, or leave existingSecret empty" }}
{{- end }}
{{- if hasKey .Values.serviceAccount.annotations "eks.amazonaws.com/role-arn" }}
{{- fail "serviceAccount.annotations would give every component the same IAM role: set eks.amazonaws.com/role-arn under serviceAccount.web.annotations and serviceAccount.worker.annotations, each a role with only its own SQS actions (docs/security.md)" }}
{{- end }}
{{- if and .Values.config.DISABLE_SIGNATURE_CHECK (not (or .Values.config.SQS_ENDPOINT_URL .Values.localDependencies.sqs.enabled)) }}
{{- fail "config.DISABLE_SIGNATURE_CHECK accepts unsigned forms: the chart allows it only with an SQS emulator (config.SQS_ENDPOINT_URL or localDependencies.sqs.enabled), never against AWS" }}
{{- end }}
{{- if and (or $s.AWS_ACCESS_KEY_ID $s.AWS_SECRET_ACCESS_KEY) (not (and $s.AWS_ACCESS_KEY_ID $s.AWS_SECRET_ACCESS_KEY)) }}
{{- fail "secrets.AWS_ACCESS_KEY_ID and secrets.AWS_SECRET_ACCESS_KEY go together: set both or neither" }}
{{- end }}
{{- if and .Values.tracing.endpoint .Values.networkPolicy.enabled .Values.networkPolicy.egress (not .Values.tracing.egress) }}
{{- fail "networkPolicy.egress restricts egress and tracing.endpoint is set: add tracing.egress rules that reach the collector, or spans cannot leave the pods" }}
{{- end }}
{{- $mode := .Values.worker.autoscaling.mode }}
{{- if not (has $mode (list "keda" "hpa")) }}
{{- fail (printf "worker.autoscaling.mode must be \"keda\" or \"hpa\", not %q" (toString $mode)) }}
{{- end }}
{{- $keda := .Values.worker.autoscaling.keda }}
{{- if and .Values.worker.autoscaling.enabled (eq $mode "keda") $keda.operatorVersion }}
{{- $min := include "form-data.kedaMinimumVersion" . }}
{{- if semverCompare (printf "<%s-0" $min) (toString $keda.operatorVersion) }}
{{- fail (printf "worker.autoscaling.keda.operatorVersion is %s; the chart needs KEDA %s or later: older KEDA applies fallback only when the HPA asks, so a worker at minReplicas 0 whose scaler fails stays at zero (kedacore/keda#7244)" (toString $keda.operatorVersion) $min) }}
{{- end }}
{{- end }}
{{- $wait := int .Values.config.SQS_WAIT_TIME }}
{{- with .Values.worker.terminationGracePeriodSeconds }}
{{- if le (int .) $wait }}
{{- fail (printf "worker.terminationGracePeriodSeconds (%d) must exceed config.SQS_WAIT_TIME (%d): on SIGTERM the worker lets its in-flight long poll return before it stops; leave it unset to derive SQS_WAIT_TIME + worker.processingBudgetSeconds + worker.shutdownMarginSeconds" (int .) $wait) }}
{{- end }}
{{- end }}
{{- with .Values.web.terminationGracePeriodSeconds }}
{{- $min := add (include "form-data.webPreStopSeconds" $) (div (add (int $.Values.config.SHUTDOWN_DELAY_MS) 999) 1000) }}
{{- if le (int .) (int $min) }}
{{- fail (printf "web.terminationGracePeriodSeconds (%d) must exceed the preStop sleep plus SHUTDOWN_DELAY_MS (%d s) so in-flight requests can drain" (int .) (int $min)) }}
{{- end }}
{{- end }}
{{- if and .Values.web.autoscaling.enabled (lt (int .Values.web.autoscaling.maxReplicas) (int .Values.web.autoscaling.minReplicas)) }}
{{- fail "web.autoscaling.maxReplicas must be at least web.autoscaling.minReplicas" }}
{{- end }}
{{- if and .Values.worker.autoscaling.enabled (lt (int .Values.worker.autoscaling.maxReplicas) (int .Values.worker.autoscaling.minReplicas)) }}
{{- fail "worker.autoscaling.maxReplicas must be at least worker.autoscaling.minReplicas" }}
{{- end }}
{{- if and .Values.worker.autoscaling.enabled (eq $mode "hpa") (lt (int .Values.worker.autoscaling.minReplicas) 1) }}
{{- fail "worker.autoscaling.minReplicas must be at least 1 in hpa mode (scaling to zero needs keda)" }}
{{- end }}
{{- $budget := include "form-data.connectionBudget" . | fromJson }}
{{- with .Values.database.maxConnections }}
{{- if gt (int $budget.peak) (int .) }}
{{- fail (printf "database.maxConnections is %d but this release can open %d database connections: %s. Lower worker.autoscaling.maxReplicas or config.DATABASE_POOL_MAX, raise the database's limit, or put PgBouncer / RDS Proxy in front of it (docs/database.md)" (int .) (int $budget.peak) $budget.text) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The release's peak of database connections, as JSON {peak, text}: worker pods
at their most (max replicas plus the rolling-update surge of 25 %, rounded up)
× DATABASE_POOL_MAX, plus the migrations Job (1, when enabled), plus an
export (1). The pool's default is the code's (services/common/config.ts).
*/}}
{{- define "form-data.connectionBudget" -}}
{{- $pool := int (default 2 .Values.config.DATABASE_POOL_MAX) }}
{{- $replicas := 0 }}
{{- if .Values.worker.enabled }}
{{- $replicas = int (ternary .Values.worker.autoscaling.maxReplicas .Values.worker.replicaCount .Values.worker.autoscaling.enabled) }}
{{- end }}
{{- $surge := div (add (mul $replicas 25) 99) 100 }}
{{- $workers := mul (add $replicas $surge) $pool }}
{{- $migrations := ternary 1 0 .Values.migrations.enabled }}
{{- $peak := add $workers $migrations 1 }}
{{- $text := printf "%d worker pods (%d + %d surge) × %d (DATABASE_POOL_MAX) + %d (migrations Job) + 1 (an export) = %d" (add $replicas $surge) $replicas $surge $pool $migrations $peak }}
{{- dict "peak" $peak "text" $text | toJson }}
{{- end }}

{{/*
Seconds the web's preStop hook sleeps (0 without one).
*/}}
{{- define "form-data.webPreStopSeconds" -}}
{{- if eq .Values.web.preStop.mode "none" }}0{{ else }}{{ int .Values.web.preStop.seconds }}{{ end }}
{{- end }}

{{/*
Web grace period: preStop + SHUTDOWN_DELAY_MS + drain + margin, unless set.
*/}}
{{- define "form-data.webTerminationGracePeriodSeconds" -}}
{{- if .Values.web.terminationGracePeriodSeconds }}
{{- int .Values.web.terminationGracePeriodSeconds }}
{{- else }}
{{- $delay := div (add (int .Values.config.SHUTDOWN_DELAY_MS) 999) 1000 }}
{{- add (include "form-data.webPreStopSeconds" .) $delay (int .Values.web.drainSeconds) (int .Values.web.shutdownMarginSeconds) }}
{{- end }}
{{- end }}

{{/*
Worker grace period: SQS_WAIT_TIME + processing budget + margin, unless set.
*/}}
{{- define "form-data.workerTerminationGracePeriodSeconds" -}}
{{- if .Values.worker.terminationGracePeriodSeconds }}
{{- int .Values.worker.terminationGracePeriodSeconds }}
{{- else }}
{{- add (int .Values.config.SQS_WAIT_TIME) (int .Values.worker.processingBudgetSeconds) (int .Values.worker.shutdownMarginSeconds) }}
{{- end }}
{{- end }}

{{/*
Annotations that roll pods when configuration changes.
*/}}
{{- define "form-data.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}

{{/*
Pod-level settings shared by all of the app's pods.
*/}}
{{- define "form-data.podCommon" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{ end -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
The writable /tmp of the read-only root filesystem.
*/}}
{{- define "form-data.tmpVolume" -}}
- name: tmp
  emptyDir:
    {{- with .Values.tmpSizeLimit }}
    sizeLimit: {{ . }}
    {{- end }}
{{- end }}

{{/*
The standard OpenTelemetry variables from tracing.* (docs/tracing.md); nothing
while tracing.endpoint is empty.
*/}}
{{- define "form-data.tracingEnv" -}}
{{- $t := .Values.tracing }}
{{- if $t.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $t.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $t.protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $t.sampler | quote }}
{{- with $t.samplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ . | quote }}
{{- end }}
{{- with $t.resourceAttributes }}
{{- $pairs := list }}
{{- range $k, $v := . }}
{{- $pairs = append $pairs (printf "%s=%s" $k (toString $v)) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $pairs | quote }}
{{- end }}
{{- with $t.headersSecret.name }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $t.headersSecret.key | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The linter's exceptions (kube-score, standing in for kube-linter: docs/releasing.md), as the kube-score/ignore
annotation of a workload. Each check the chart does not meet, and why:
- container-image-pull-policy: images are pinned by version tag or digest (image.digest), never a moving tag, so
  IfNotPresent pulls what Always would; Always adds a registry round trip to every start and fails restarts while
  the registry is down.
- container-resources: CPU limits are left unset on purpose (CFS throttling stalls the event loop and the probes);
  CPU and memory requests and memory limits are set.
- container-ephemeral-storage-request-and-limit: the root filesystem is read-only; the only writable path is the
  /tmp emptyDir, bounded by tmpSizeLimit; logs go to stdout.
- pod-networkpolicy: only while networkPolicy.enabled is off or its egress is empty (both are the operator's
  choice: the peers are the cluster's), and always for the migrations Job and the helm test Pod, which the chart's
  policies do not select (short-lived: the Job reaches only the database, the test Pod only the web).
- deployment-has-host-podantiaffinity: spreading is left to the affinity and topologySpreadConstraints values
  (zones or hosts are the cluster's); kube-score recognises only a host podAntiAffinity.
- deployment-replicas, horizontalpodautoscaler-replicas (worker): one worker loses nothing when it restarts (the
  messages wait on SQS); its Service only serves metrics.
- deployment-replicas (web): only when web.replicaCount is below 2, which the values chose (values-local.yaml for
  local clusters); the default is 2.
Local dependencies (localDependencies.*, local clusters only, ephemeral by design) are not held to production
checks: their images' own users and writable filesystems, a moving fauxqs tag, one replica, Recreate.
Usage: include "form-data.lintExceptions" (dict "ctx" . "component" "web")
*/}}
{{- define "form-data.lintExceptions" -}}
{{- $ctx := .ctx }}
{{- $np := $ctx.Values.networkPolicy }}
{{- $ignore := list "container-image-pull-policy" "container-resources" "container-ephemeral-storage-request-and-limit" }}
{{- if or (not $np.enabled) (not $np.egress) (has .component (list "migrations" "test")) }}
{{- $ignore = append $ignore "pod-networkpolicy" }}
{{- end }}
{{- if has .component (list "web" "worker") }}
{{- $ignore = append $ignore "deployment-has-host-podantiaffinity" }}
{{- end }}
{{- if and (eq .component "web") (lt (int $ctx.Values.web.replicaCount) 2) }}
{{- $ignore = append $ignore "deployment-replicas" }}
{{- end }}
{{- if eq .component "worker" }}
{{- $ignore = concat $ignore (list "deployment-replicas" "horizontalpodautoscaler-replicas") }}
{{- end }}
{{- if eq .component "local" }}
{{- $ignore = concat $ignore (list "container-security-context-readonlyrootfilesystem" "container-security-context-user-group-id" "deployment-replicas" "deployment-strategy" "pod-probes" "deployment-has-host-podantiaffinity" "container-image-tag") }}
{{- end -}}
kube-score/ignore: {{ join "," $ignore | quote }}
{{- end }}
