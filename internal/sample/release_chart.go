package sample

// The Helm chart and the configuration directory of the sample release.
// Every ${REGISTRY} is replaced by the registry host.

const chartYAML = `apiVersion: v2
name: demo-app
description: The demo api and worker, deployed together.
type: application
version: 0.1.0
appVersion: "1.0"
maintainers:
  - name: Demo Release Team
    email: release@demo.example
`

const chartValues = `# Default values for demo-app.
registry: ${REGISTRY}
api:
  image: demo/api:1.0
  replicas: 2
worker:
  image: demo/worker:1.0
  replicas: 1
`

const chartDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-api
  labels:
    app.kubernetes.io/name: {{ .Chart.Name }}-api
spec:
  replicas: {{ .Values.api.replicas }}
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ .Chart.Name }}-api
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ .Chart.Name }}-api
    spec:
      containers:
        - name: api
          image: "{{ .Values.registry }}/{{ .Values.api.image }}"
          ports:
            - containerPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-worker
spec:
  replicas: {{ .Values.worker.replicas }}
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ .Chart.Name }}-worker
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ .Chart.Name }}-worker
    spec:
      initContainers:
        - name: migrate
          image: "{{ .Values.registry }}/{{ .Values.api.image }}"
          args: ["migrate"]
      containers:
        - name: worker
          image: "{{ .Values.registry }}/{{ .Values.worker.image }}"
`

const chartNotes = `demo-app {{ .Chart.Version }} is installed as {{ .Release.Name }}.
`

const confServer = `# Listener settings, read by the api at start.
listen = 0.0.0.0:8080
read_timeout = 15s
`

const confLimits = `# Request limits.
max_body_bytes = 1048576
max_conns = 512
`

const confCiphers = `# TLS 1.2 cipher suites, in order of preference.
TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
`

const confBackup = `# An editor backup: excluded by airlock.yaml.
listen = 127.0.0.1:8080
`
