{{/* The chart's name. */}}
{{- define "metachat.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every resource name. */}}
{{- define "metachat.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "metachat.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "metachat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one role: (dict "root" $ "role" "user"). */}}
{{- define "metachat.selector" -}}
app.kubernetes.io/name: {{ include "metachat.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{/* The Secret with the keys. */}}
{{- define "metachat.secretName" -}}
{{- default (printf "%s-keys" (include "metachat.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The image reference. */}}
{{- define "metachat.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The pod template of one role: (dict "root" $ "role" "user" "spec" .Values.roles.user).
*/}}
{{- define "metachat.pod" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "metachat.labels" $root | nindent 4 }}
    {{- include "metachat.selector" . | nindent 4 }}
  annotations:
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ $v.metrics.port | quote }}
    prometheus.io/path: /metrics
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
spec:
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  automountServiceAccountToken: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    fsGroup: 10001
    seccompProfile:
      type: RuntimeDefault
  terminationGracePeriodSeconds: {{ add $v.server.shutdownTimeoutSecs $v.server.preStopSleepSecs 5 }}
  containers:
    - name: server
      image: {{ include "metachat.image" $root | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      envFrom:
        - configMapRef:
            name: {{ include "metachat.fullname" $root }}-config
      env:
        - name: METACHAT_ROLES
          value: {{ .role | quote }}
        {{- if eq .role "matching" }}
        # The pod's stable name is its instance: its own replica of the index.
        - name: METACHAT_INSTANCE
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- if eq .role "user" }}
        - name: METACHAT_TOKEN_KEY_FILE
          value: /etc/metachat/keys/token.key
        {{- end }}
        - name: METACHAT_TOKEN_PUBLIC_KEY_FILE
          value: /etc/metachat/keys/token.key.pub
        - name: METACHAT_INDEX_KEY
          valueFrom:
            secretKeyRef:
              name: {{ include "metachat.secretName" $root }}
              key: index.key
        {{- with $v.server.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
        - name: metrics
          containerPort: {{ $v.metrics.port }}
          protocol: TCP
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 5
        failureThreshold: 60
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 2
      lifecycle:
        preStop:
          exec:
            command: ["sleep", {{ $v.server.preStopSleepSecs | quote }}]
      resources:
        {{- toYaml (default $v.resources .spec.resources) | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: ["ALL"]
      volumeMounts:
        - name: keys
          mountPath: /etc/metachat/keys
          readOnly: true
        - name: data
          mountPath: /var/lib/metachat
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: keys
      secret:
        secretName: {{ include "metachat.secretName" $root }}
        # Group-readable: the files belong to root, the group to fsGroup (10001).
        defaultMode: 0440
        items:
          {{- if eq .role "user" }}
          - key: token.key
            path: token.key
          {{- end }}
          - key: token.key.pub
            path: token.key.pub
    - name: data
      emptyDir: {}
    - name: tmp
      emptyDir: {}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
