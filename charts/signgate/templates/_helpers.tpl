{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "signgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: <release>-signgate unless the release already says signgate. */}}
{{- define "signgate.fullname" -}}
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

{{- define "signgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "signgate.labels" -}}
helm.sh/chart: {{ include "signgate.chart" . }}
{{ include "signgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: signgate
{{- end }}

{{/* Labels that select the gate pods; never change them (Deployment selectors are immutable). */}}
{{- define "signgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "signgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "signgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "signgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The gate's image: [registry/]repository@digest when a digest is given, else
[registry/]repository:tag. Every pod the chart renders (the gate, the
pre-delete hook, the helm test pods) runs this one reference, so an
image.registry mirror applies to all of them.
*/}}
{{- define "signgate.image" -}}
{{- $repo := .Values.image.repository }}
{{- with .Values.image.registry }}
{{- $repo = printf "%s/%s" . $repo }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "signgate.tlsSecretName" -}}
{{- printf "%s-tls" (include "signgate.fullname" .) }}
{{- end }}

{{/* DNS names of the webhook Service, used as the serving certificate's SANs. */}}
{{- define "signgate.dnsNames" -}}
{{- $svc := include "signgate.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/*
Namespaces the API server never sends to the gate: kube-system, the release
namespace, config.exemptNamespaces and webhook.excludeNamespaces. JSON list.
*/}}
{{- define "signgate.excludedNamespaces" -}}
{{- $ns := list "kube-system" .Release.Namespace }}
{{- $ns = concat $ns (.Values.config.exemptNamespaces | default list) (.Values.webhook.excludeNamespaces | default list) }}
{{- $ns | uniq | toJson }}
{{- end }}

{{/*
The webhook TLS material when the chart makes it (certManager.enabled false):
a dict with caCert, cert, key (PEM, ECDSA P-256). Generated once per render and memoized
in .Values so the Secret and both webhook configurations agree; an existing
Secret in the cluster is reused so upgrades keep the same CA and caBundle.
*/}}
{{- define "signgate.generatedTLS" -}}
{{- if not (hasKey .Values "__signgateTLS") }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "signgate.tlsSecretName" .) }}
{{- $tls := dict }}
{{- if and $secret $secret.data (hasKey $secret.data "ca.crt") (hasKey $secret.data "tls.crt") (hasKey $secret.data "tls.key") }}
{{- $tls = dict "caCert" (index $secret.data "ca.crt" | b64dec) "cert" (index $secret.data "tls.crt" | b64dec) "key" (index $secret.data "tls.key" | b64dec) }}
{{- else }}
{{- $days := int .Values.tls.validityDays }}
{{- $ca := genCAWithKey (printf "%s-ca" (include "signgate.fullname" .)) $days (genPrivateKey "ecdsa") }}
{{- $dns := include "signgate.dnsNames" . | fromJsonArray }}
{{- $cert := genSignedCertWithKey (index $dns 2) nil $dns $days $ca (genPrivateKey "ecdsa") }}
{{- $tls = dict "caCert" $ca.Cert "cert" $cert.Cert "key" $cert.Key }}
{{- end }}
{{- $_ := set .Values "__signgateTLS" $tls }}
{{- end }}
{{- index .Values "__signgateTLS" | toJson }}
{{- end }}

{{/* caBundle for the webhook clientConfig, base64 PEM; empty with cert-manager (cainjector fills it). */}}
{{- define "signgate.caBundle" -}}
{{- if .Values.webhook.caBundle }}
{{- .Values.webhook.caBundle }}
{{- else if not .Values.certManager.enabled }}
{{- (include "signgate.generatedTLS" . | fromJson).caCert | b64enc }}
{{- end }}
{{- end }}

{{/* Annotations on the webhook configurations (cert-manager's CA injection). */}}
{{- define "signgate.webhookAnnotations" -}}
{{- if and .Values.certManager.enabled (not .Values.webhook.caBundle) }}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "signgate.fullname" .) }}
{{- end }}
{{- end }}

{{/* clientConfig for one webhook path ("/mutate" or "/validate"). */}}
{{- define "signgate.clientConfig" -}}
{{- $root := index . 0 }}
{{- $path := index . 1 }}
{{- with $root.Values.webhook.url }}
url: {{ printf "%s%s" (trimSuffix "/" .) $path | quote }}
{{- else }}
service:
  name: {{ include "signgate.fullname" $root }}
  namespace: {{ $root.Release.Namespace }}
  path: {{ $path }}
  port: {{ $root.Values.service.port }}
{{- end }}
{{- with include "signgate.caBundle" $root }}
caBundle: {{ . }}
{{- end }}
{{- end }}

{{/*
namespaceSelector shared by every webhook: the exclusion by name, ANDed with
webhook.namespaceSelector (its matchLabels, and its matchExpressions after the
exclusion), which can only narrow it.
*/}}
{{- define "signgate.namespaceSelector" -}}
{{- $extra := .Values.webhook.namespaceSelector | default dict -}}
namespaceSelector:
  {{- with $extra.matchLabels }}
  matchLabels: {{ toJson . }}
  {{- end }}
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "signgate.excludedNamespaces" . }}
    {{- range $extra.matchExpressions }}
    - {{ toJson . }}
    {{- end }}
{{- end }}

{{/* Rules for pods: CREATE/UPDATE of the pod and its ephemeral containers. */}}
{{- define "signgate.podRules" -}}
rules:
  - apiGroups: [""]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["pods", "pods/ephemeralcontainers"]
    scope: Namespaced
{{- end }}

{{/* Rules for every workload kind that carries a pod template. */}}
{{- define "signgate.workloadRules" -}}
rules:
  - apiGroups: ["apps"]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["deployments", "replicasets", "statefulsets", "daemonsets"]
    scope: Namespaced
  - apiGroups: ["batch"]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["jobs", "cronjobs"]
    scope: Namespaced
  - apiGroups: [""]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["replicationcontrollers", "podtemplates"]
    scope: Namespaced
{{- end }}
