{{/*
Names and labels.
*/}}
{{- define "hookguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hookguard.fullname" -}}
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

{{- define "hookguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hookguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hookguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hookguard.labels" -}}
helm.sh/chart: {{ include "hookguard.chart" . }}
{{ include "hookguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hookguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hookguard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "hookguard.image" -}}
{{- printf "%s:%s" .Values.hookguard.image.repository (default .Chart.AppVersion .Values.hookguard.image.tag) }}
{{- end }}

{{/*
Where an existing Secret named in a route is mounted; the route's file
secret points below it. A whole-Secret directory mount (never subPath) is
what lets the kubelet swap in a rotated Secret, which hookguard then reads.
*/}}
{{- define "hookguard.secretsDir" -}}
/var/run/secrets/hookguard
{{- end }}

{{- define "hookguard.configDir" -}}
/etc/hookguard
{{- end }}

{{/* Where the memory store's snapshot lives (an emptyDir). */}}
{{- define "hookguard.stateDir" -}}
/var/lib/hookguard
{{- end }}

{{/* Where the durable queue's file lives (a PersistentVolumeClaim). */}}
{{- define "hookguard.queueDir" -}}
/var/lib/hookguard/queue
{{- end }}

{{/* Whether the queue is the embedded store, on a PersistentVolumeClaim. */}}
{{- define "hookguard.embeddedQueue" -}}
{{- if and .Values.queue.enabled (ne .Values.queue.store "redis") }}true{{ end }}
{{- end }}

{{/* The queue's Redis when queue.store is redis: its own, or replay's. */}}
{{- define "hookguard.queueRedisUrl" -}}
{{- if and .Values.queue.enabled (eq .Values.queue.store "redis") }}{{ .Values.queue.redisUrl | default .Values.replay.redisUrl }}{{ end }}
{{- end }}

{{/* Whether the memory store keeps its keys in a snapshot. */}}
{{- define "hookguard.snapshots" -}}
{{- if and (not .Values.replay.redisUrl) .Values.replay.snapshot.enabled }}true{{ end }}
{{- end }}

{{/* The env var the Redis password is passed in. */}}
{{- define "hookguard.redisPasswordEnv" -}}
HOOKGUARD_REDIS_PASSWORD
{{- end }}

{{/*
Volume name for a mounted Secret: a DNS label, unique per Secret name.
*/}}
{{- define "hookguard.secretVolumeName" -}}
{{- printf "hg-%s-%s" (. | replace "." "-" | trunc 40 | trimSuffix "-") (sha256sum . | trunc 8) }}
{{- end }}

{{/*
The existing Secrets the routes name with `secretName`, sorted, as a
JSON list (templates return strings).
*/}}
{{- define "hookguard.routeSecretNames" -}}
{{- $names := dict }}
{{- range $route := .Values.config.routes }}
{{- range $field := list "secrets" "public_keys" }}
{{- range $entry := (get $route $field | default list) }}
{{- if and (kindIs "map" $entry) (hasKey $entry "secretName") }}
{{- $_ := set $names (toString $entry.secretName) true }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- /* Egress secrets may sit anywhere under a route (auth, sign, tls). */}}
{{- range $m := regexFindAll "\"secretName\":\"[^\"]+\"" (toJson (.Values.config.egress | default dict)) -1 }}
{{- $_ := set $names (trimSuffix "\"" (trimPrefix "\"secretName\":\"" $m)) true }}
{{- end }}
{{- keys $names | sortAlpha | toJson }}
{{- end }}

{{/*
A value with every `{ secretName, key, id }` map in it, at any depth,
turned into `{ file = ..., id = ... }` under the Secret's mount; printed as
JSON `{"v": value}` (templates return strings, and fromJson only maps).
*/}}
{{- define "hookguard.withSecretFiles" -}}
{{- $v := .value }}
{{- if and (kindIs "map" $v) (hasKey $v "secretName") }}
{{- range $k := keys $v }}
{{- if not (has $k (list "secretName" "key" "id")) }}
{{- fail (printf "%s: %q is not allowed with secretName (secretName, key, id)" $.where $k) }}
{{- end }}
{{- end }}
{{- $key := required (printf "%s: key is required with secretName" .where) $v.key }}
{{- $src := dict "file" (printf "%s/%s/%s" (include "hookguard.secretsDir" .) $v.secretName $key) }}
{{- if hasKey $v "id" }}{{ $_ := set $src "id" $v.id }}{{ end }}
{{- dict "v" $src | toJson }}
{{- else if kindIs "map" $v }}
{{- $out := dict }}
{{- range $k, $e := $v }}
{{- $_ := set $out $k (include "hookguard.withSecretFiles" (dict "value" $e "where" (printf "%s.%s" $.where $k)) | fromJson).v }}
{{- end }}
{{- dict "v" $out | toJson }}
{{- else if kindIs "slice" $v }}
{{- $out := list }}
{{- range $i, $e := $v }}
{{- $out = append $out (include "hookguard.withSecretFiles" (dict "value" $e "where" (printf "%s[%d]" $.where $i)) | fromJson).v }}
{{- end }}
{{- dict "v" $out | toJson }}
{{- else }}
{{- dict "v" $v | toJson }}
{{- end }}
{{- end }}

{{/*
A value as TOML: strings as basic strings (a JSON string is one), whole
numbers as integers, lists as arrays, maps as inline tables with sorted
keys.
*/}}
{{- define "hookguard.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "hookguard.tomlValue" -}}
{{- $v := . }}
{{- if kindIs "string" $v }}{{ toJson $v }}
{{- else if kindIs "bool" $v }}{{ $v }}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) }}
{{- if eq $v (floor $v) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) }}{{ $v }}
{{- else if kindIs "slice" $v }}[{{ range $i, $e := $v }}{{ if $i }}, {{ end }}{{ include "hookguard.tomlValue" $e }}{{ end }}]
{{- else if kindIs "map" $v }}
{{- if not $v }}{}{{ else }}{ {{ range $i, $k := keys $v | sortAlpha }}{{ if $i }}, {{ end }}{{ include "hookguard.tomlKey" $k }} = {{ include "hookguard.tomlValue" (get $v $k) }}{{ end }} }{{ end }}
{{- else }}{{ fail (printf "hookguard config: cannot write a %s value (%v) as TOML" (kindOf $v) $v) }}
{{- end }}
{{- end }}

{{/*
A route's secrets or public_keys list with `{ secretName, key, id }`
entries turned into `{ file = ..., id = ... }` under the Secret's mount.
*/}}
{{- define "hookguard.secretSources" -}}
{{- $out := list }}
{{- range $i, $entry := .entries }}
{{- if and (kindIs "map" $entry) (hasKey $entry "secretName") }}
{{- $where := printf "config.routes[%s].%s[%d]" $.route $.field $i }}
{{- range $k := keys $entry }}
{{- if not (has $k (list "secretName" "key" "id")) }}
{{- fail (printf "%s: %q is not allowed with secretName (secretName, key, id)" $where $k) }}
{{- end }}
{{- end }}
{{- $key := required (printf "%s: key is required with secretName" $where) $entry.key }}
{{- $src := dict "file" (printf "%s/%s/%s" (include "hookguard.secretsDir" $) $entry.secretName $key) }}
{{- if hasKey $entry "id" }}{{ $_ := set $src "id" $entry.id }}{{ end }}
{{- $out = append $out $src }}
{{- else }}
{{- $out = append $out $entry }}
{{- end }}
{{- end }}
{{- include "hookguard.tomlValue" $out }}
{{- end }}

{{/*
Duration text ("25s", "500ms", "2m") to whole seconds, rounded up.
*/}}
{{- define "hookguard.durationSeconds" -}}
{{- $d := nospace (toString .) }}
{{- if not (regexMatch "^[0-9]+(ms|s|m|h|d)$" $d) }}
{{- fail (printf "config.server.shutdown_grace: %q is not a duration like \"25s\"" $d) }}
{{- end }}
{{- $digits := regexFind "^[0-9]+" $d }}
{{- $n := atoi $digits }}
{{- $unit := trimPrefix $digits $d }}
{{- if eq $unit "ms" }}{{ div (add $n 999) 1000 }}
{{- else if eq $unit "s" }}{{ $n }}
{{- else if eq $unit "m" }}{{ mul $n 60 }}
{{- else if eq $unit "h" }}{{ mul $n 3600 }}
{{- else }}{{ mul $n 86400 }}
{{- end }}
{{- end }}

{{/* shutdown_grace in seconds (hookguard's default is 25s). */}}
{{- define "hookguard.shutdownGraceSeconds" -}}
{{- include "hookguard.durationSeconds" (default "25s" (get .Values.config.server "shutdown_grace")) }}
{{- end }}

{{/*
The pod's grace period: preStop pause plus shutdown_grace plus a margin,
or the user's value when it leaves hookguard room to drain.
*/}}
{{- define "hookguard.terminationGracePeriodSeconds" -}}
{{- $floor := add (int .Values.hookguard.preStopSleepSeconds) (int (include "hookguard.shutdownGraceSeconds" .)) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $floor 5 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) $floor }}
{{- fail (printf "terminationGracePeriodSeconds: %v leaves hookguard no time to drain; it must exceed hookguard.preStopSleepSeconds + config.server.shutdown_grace = %d" .Values.terminationGracePeriodSeconds $floor) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
hookguard's config.toml. Only keys from hookguard's configuration
reference are written: it refuses unknown keys.
*/}}
{{- define "hookguard.config" -}}
{{- $server := deepCopy (.Values.config.server | default dict) }}
{{- range $k := list "listen" "admin_listen" }}
{{- if hasKey $server $k }}
{{- fail (printf "config.server.%s: set by the chart from hookguard.ports; remove it" $k) }}
{{- end }}
{{- end }}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.hookguard.ports.webhooks)) }}
{{- $_ := set $server "admin_listen" (printf "0.0.0.0:%d" (int .Values.hookguard.ports.admin)) }}
{{- if not (hasKey $server "upstream") }}
{{- $_ := set $server "upstream" (printf "http://127.0.0.1:%d" (int .Values.app.port)) }}
{{- end -}}
# Rendered by the hookguard Helm chart from its values; edit those instead.
[server]
{{- range $k := keys $server | sortAlpha }}
{{ include "hookguard.tomlKey" $k }} = {{ include "hookguard.tomlValue" (get $server $k) }}
{{- end }}

[replay]
{{- if .Values.replay.redisUrl }}
store = "redis"
redis_url = {{ toJson .Values.replay.redisUrl }}
{{- if .Values.replay.passwordSecret.name }}
redis_password = { env = {{ include "hookguard.redisPasswordEnv" . | toJson }} }
{{- end }}
{{- with .Values.replay.keyPrefix }}
key_prefix = {{ toJson . }}
{{- end }}
{{- with .Values.replay.storeTimeout }}
store_timeout = {{ toJson . }}
{{- end }}
{{- with .Values.replay.onStoreError }}
on_store_error = {{ toJson . }}
{{- end }}
{{- else }}
store = "memory"
max_entries = {{ int64 .Values.replay.maxEntries }}
{{- if include "hookguard.snapshots" . }}
snapshot_path = "{{ include "hookguard.stateDir" . }}/replay.snapshot"
{{- with .Values.replay.snapshot.interval }}
snapshot_interval = {{ toJson . }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.queue.enabled }}
{{- if not (has .Values.queue.store (list "embedded" "redis")) }}
{{- fail (printf "queue.store: %q is not embedded or redis" .Values.queue.store) }}
{{- end }}
{{- if eq .Values.queue.store "redis" }}
{{- if not (include "hookguard.queueRedisUrl" .) }}
{{- fail "queue.store: redis needs queue.redisUrl, or replay.redisUrl to share replay's Redis" }}
{{- end }}

[queue]
store = "redis"
redis_url = {{ include "hookguard.queueRedisUrl" . | toJson }}
{{- if .Values.replay.passwordSecret.name }}
redis_password = { env = {{ include "hookguard.redisPasswordEnv" . | toJson }} }
{{- end }}
{{- with .Values.queue.keyPrefix }}
key_prefix = {{ toJson . }}
{{- end }}
{{- with .Values.queue.storeTimeout }}
store_timeout = {{ toJson . }}
{{- end }}
{{- if .Values.queue.acceptRedisRisk }}
accept_redis_risk = true
{{- end }}
{{- else }}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}
{{- fail "queue.enabled: the embedded queue is one file for one pod; set replicaCount to 1 and autoscaling.enabled to false, or queue.store to redis" }}
{{- end }}

[queue]
store = "embedded"
path = "{{ include "hookguard.queueDir" . }}/queue.db"
{{- end }}
{{- with .Values.queue.maxBytes }}
max_bytes = {{ toJson . }}
{{- end }}
{{- end }}
{{- if not .Values.config.routes }}
{{- fail "config.routes: at least one route is required (hookguard refuses a config without one)" }}
{{- end }}
{{- range $i, $route := .Values.config.routes }}

[[routes]]
{{- $first := list "name" "path" }}
{{- range $k := $first }}
{{- if hasKey $route $k }}
{{ $k }} = {{ include "hookguard.tomlValue" (get $route $k) }}
{{- end }}
{{- end }}
{{- range $k := keys $route | sortAlpha }}
{{- if has $k (list "secrets" "public_keys") }}
{{ $k }} = {{ include "hookguard.secretSources" (dict "entries" (get $route $k) "route" (toString $i) "field" $k "Values" $.Values) }}
{{- else if not (has $k $first) }}
{{ include "hookguard.tomlKey" $k }} = {{ include "hookguard.tomlValue" (get $route $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.config.egress }}
{{- if hasKey . "listen" }}
{{- fail "config.egress.listen: set by the chart (127.0.0.1:hookguard.ports.egress); remove it" }}
{{- end }}
{{- $egress := (include "hookguard.withSecretFiles" (dict "value" . "where" "config.egress") | fromJson).v }}

[egress]
listen = "127.0.0.1:{{ int $.Values.hookguard.ports.egress }}"
{{- range $k := keys $egress | sortAlpha }}
{{- if ne $k "routes" }}
{{ include "hookguard.tomlKey" $k }} = {{ include "hookguard.tomlValue" (get $egress $k) }}
{{- end }}
{{- end }}
{{- range $route := $egress.routes | default list }}

[[egress.routes]]
{{- $first := list "name" "prefix" }}
{{- range $k := $first }}
{{- if hasKey $route $k }}
{{ $k }} = {{ include "hookguard.tomlValue" (get $route $k) }}
{{- end }}
{{- end }}
{{- range $k := keys $route | sortAlpha }}
{{- if not (has $k $first) }}
{{ include "hookguard.tomlKey" $k }} = {{ include "hookguard.tomlValue" (get $route $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- /* The file ends with a newline, as the ConfigMap carries it. */}}
{{ end }}

{{/*
The hookguard container. Native sidecar mode adds restartPolicy: Always
where it is placed (initContainers).
*/}}
{{- define "hookguard.container" -}}
name: hookguard
image: {{ include "hookguard.image" . | quote }}
imagePullPolicy: {{ .Values.hookguard.image.pullPolicy }}
args:
  - serve
  - --config
  - {{ include "hookguard.configDir" . }}/config.toml
  - --log-format
  - {{ .Values.hookguard.logFormat }}
{{- if .Values.hookguard.nativeSidecar }}
restartPolicy: Always
{{- end }}
ports:
  - name: webhooks
    containerPort: {{ .Values.hookguard.ports.webhooks }}
    protocol: TCP
  - name: admin
    containerPort: {{ .Values.hookguard.ports.admin }}
    protocol: TCP
env:
  - name: RUST_LOG
    value: {{ .Values.hookguard.logLevel | quote }}
  {{- if and (or .Values.replay.redisUrl (include "hookguard.queueRedisUrl" .)) .Values.replay.passwordSecret.name }}
  - name: {{ include "hookguard.redisPasswordEnv" . }}
    valueFrom:
      secretKeyRef:
        name: {{ .Values.replay.passwordSecret.name }}
        key: {{ .Values.replay.passwordSecret.key }}
  {{- end }}
  {{- with .Values.hookguard.env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
startupProbe:
  httpGet:
    path: /readyz
    port: admin
  {{- toYaml .Values.hookguard.probes.startup | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: admin
  {{- toYaml .Values.hookguard.probes.readiness | nindent 2 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: admin
  {{- toYaml .Values.hookguard.probes.liveness | nindent 2 }}
{{- if gt (int .Values.hookguard.preStopSleepSeconds) 0 }}
lifecycle:
  preStop:
    sleep:
      seconds: {{ int .Values.hookguard.preStopSleepSeconds }}
{{- end }}
resources:
  {{- toYaml .Values.hookguard.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.hookguard.securityContext | nindent 2 }}
volumeMounts:
  - name: config
    mountPath: {{ include "hookguard.configDir" . }}
    readOnly: true
  {{- range $name := include "hookguard.routeSecretNames" . | fromJsonArray }}
  - name: {{ include "hookguard.secretVolumeName" $name }}
    mountPath: {{ include "hookguard.secretsDir" $ }}/{{ $name }}
    readOnly: true
  {{- end }}
  {{- if include "hookguard.embeddedQueue" . }}
  - name: queue
    mountPath: {{ include "hookguard.queueDir" . }}
  {{- end }}
  {{- if include "hookguard.snapshots" . }}
  - name: replay-state
    mountPath: {{ include "hookguard.stateDir" . }}
  {{- end }}
  {{- with .Values.hookguard.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
