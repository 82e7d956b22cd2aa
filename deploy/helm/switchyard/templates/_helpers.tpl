{{/* The release's name for every object, at most 63 characters. */}}
{{- define "switchyard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.headless" -}}
{{- printf "%s-headless" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchyard.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "switchyard.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "switchyard.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The gossip key Secret: the chart's own, or the one named. */}}
{{- define "switchyard.gossipSecret" -}}
{{- if .Values.gossip.existingSecret -}}
{{ .Values.gossip.existingSecret }}
{{- else -}}
{{ include "switchyard.fullname" . }}-gossip
{{- end -}}
{{- end -}}

{{/* Checks on the values, before anything renders. */}}
{{- define "switchyard.validate" -}}
{{- if not (has (int .Values.replicas) (list 1 3 5)) -}}
{{- fail (printf "replicas %v: run 3 or 5 voters (1 for a test)" .Values.replicas) -}}
{{- end -}}
{{- if and (not .Values.acl.insecureDev) (not .Values.gossip.key) (not .Values.gossip.existingSecret) -}}
{{- fail "gossip between servers must be sealed: set gossip.key (make one with `registry keygen`) or gossip.existingSecret" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) -}}
{{- fail "tls.enabled needs tls.secretName: a Secret with tls.crt, tls.key and ca.crt" -}}
{{- end -}}
{{- end -}}

{{/* The flags every server shares (voters and read servers). */}}
{{- define "switchyard.commonArgs" -}}
- server
- --node-id=$(POD_NAME)
- --data-dir=/data/raft
- --http-addr=0.0.0.0:{{ .Values.ports.http }}
- --raft-addr=0.0.0.0:{{ .Values.ports.raft }}
- --advertise-raft-addr=$(POD_IP):{{ .Values.ports.raft }}
- --gossip-addr=0.0.0.0:{{ .Values.ports.gossip }}
- --advertise-gossip-addr=$(POD_IP):{{ .Values.ports.gossip }}
{{- $full := include "switchyard.fullname" . }}
{{- $headless := include "switchyard.headless" . }}
{{- $joins := list }}
{{- range $i := until (int .Values.replicas) }}
{{- $joins = append $joins (printf "%s-%d.%s.%s.svc:%v" $full $i $headless $.Release.Namespace $.Values.ports.gossip) }}
{{- end }}
- --join={{ join "," $joins }}
{{- if .Values.dns.enabled }}
- --dns-addr=0.0.0.0:{{ .Values.ports.dns }}
- --dns-zone={{ .Values.dns.zone }}
{{- if .Values.dns.consulDomain }}
- --dns-consul-domain={{ .Values.dns.consulDomain }}
{{- end }}
{{- else }}
- --dns-addr=
{{- end }}
{{- if .Values.xds.enabled }}
- --xds-addr=0.0.0.0:{{ .Values.ports.xds }}
{{- else }}
- --xds-addr=
{{- end }}
{{- if .Values.serviceMonitor.enabled }}
- --admin-addr=0.0.0.0:{{ .Values.ports.admin }}
{{- end }}
{{- if .Values.tls.enabled }}
- --tls-cert=/tls/tls.crt
- --tls-key=/tls/tls.key
- --tls-ca=/tls/ca.crt
- --raft-tls-cert=/tls/tls.crt
- --raft-tls-key=/tls/tls.key
- --raft-tls-ca=/tls/ca.crt
{{- if .Values.tls.verifyClients }}
- --tls-verify-clients
{{- end }}
{{- else if not .Values.acl.insecureDev }}
- --raft-plaintext
{{- end }}
{{- if .Values.acl.insecureDev }}
- --insecure-dev
{{- end }}
{{- if .Values.acl.bootstrapTokenSecret }}
- --bootstrap-token-file=/bootstrap/token
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "switchyard.localityArgs" -}}
{{- with .region }}
- --region={{ . }}
{{- end }}
{{- with .datacenter }}
- --datacenter={{ . }}
{{- end }}
{{- with .unit }}
- --unit={{ . }}
{{- end }}
{{- end -}}

{{/* Environment every server needs: its own name and address, the gossip key. */}}
{{- define "switchyard.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- if or .Values.gossip.key .Values.gossip.existingSecret }}
- name: REGISTRY_GOSSIP_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "switchyard.gossipSecret" . }}
      key: gossip-key
{{- end }}
{{- end -}}

{{- define "switchyard.ports" -}}
- name: http
  containerPort: {{ .Values.ports.http }}
  protocol: TCP
- name: raft
  containerPort: {{ .Values.ports.raft }}
  protocol: TCP
- name: gossip-tcp
  containerPort: {{ .Values.ports.gossip }}
  protocol: TCP
- name: gossip-udp
  containerPort: {{ .Values.ports.gossip }}
  protocol: UDP
{{- if .Values.dns.enabled }}
- name: dns-udp
  containerPort: {{ .Values.ports.dns }}
  protocol: UDP
- name: dns-tcp
  containerPort: {{ .Values.ports.dns }}
  protocol: TCP
{{- end }}
{{- if .Values.xds.enabled }}
- name: xds
  containerPort: {{ .Values.ports.xds }}
  protocol: TCP
{{- end }}
{{- if .Values.serviceMonitor.enabled }}
- name: admin
  containerPort: {{ .Values.ports.admin }}
  protocol: TCP
{{- end }}
{{- end -}}

{{/* Readiness: /v1/health answers 200 once the server has caught up. */}}
{{- define "switchyard.probes" -}}
readinessProbe:
{{- if and .Values.tls.enabled .Values.tls.verifyClients }}
  # Kubelet cannot present a client certificate: only the port is checked.
  tcpSocket:
    port: http
{{- else }}
  httpGet:
    path: /v1/health
    port: http
    scheme: {{ if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}
  periodSeconds: 5
  failureThreshold: 3
livenessProbe:
  tcpSocket:
    port: http
  initialDelaySeconds: 30
  periodSeconds: 10
  failureThreshold: 6
{{- end -}}

{{- define "switchyard.volumeMounts" -}}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /tls
  readOnly: true
{{- end }}
{{- if .Values.acl.bootstrapTokenSecret }}
- name: bootstrap
  mountPath: /bootstrap
  readOnly: true
{{- end }}
{{- end -}}

{{- define "switchyard.volumes" -}}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName }}
    defaultMode: 0400
{{- end }}
{{- if .Values.acl.bootstrapTokenSecret }}
- name: bootstrap
  secret:
    secretName: {{ .Values.acl.bootstrapTokenSecret }}
    defaultMode: 0400
{{- end }}
{{- end -}}

{{- define "switchyard.securityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65534
  runAsGroup: 65534
  fsGroup: 65534
{{- end -}}

{{- define "switchyard.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end -}}
