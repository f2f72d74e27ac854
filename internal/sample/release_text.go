package sample

// The text files of the sample release. Every ${REGISTRY} is replaced by
// the registry host.

const airlockYAML = `# Sample release used by ` + "`make demo`" + ` and the tests.
name: demo
version: 1.0.0
images:
  - ref: ${REGISTRY}/demo/api:1.0
  - ref: ${REGISTRY}/demo/worker:1.0
  - ref: ${REGISTRY}/demo/legacy:1.0
models:
  - source: models/tiny-classifier
    name: tiny-classifier
    target: models/tiny-classifier
files:
  - source: config/app.yaml
    target: etc/demo/app.yaml
    mode: "0640"
  - source: config/logging.json
    target: etc/demo/logging.json
  - source: config/conf.d/
    target: etc/demo/conf.d/
    exclude: ["*.bak"]
charts:
  - source: charts/demo-app
    images:
      fromChart: true
sboms:
  - source: sbom/api.spdx.json
    subject: ${REGISTRY}/demo/api:1.0
  - source: sbom/worker.cdx.json
    subject: ${REGISTRY}/demo/worker:1.0
`

const appYAML = `# Settings for the demo api and worker.
server:
  listen: 0.0.0.0:8080
  read_timeout: 15s
  write_timeout: 30s
  max_body_bytes: 1048576
database:
  url: postgres://demo@db.demo.internal:5432/demo?sslmode=verify-full
  max_open_conns: 20
  max_idle_conns: 5
worker:
  queue: jobs
  concurrency: 4
  retry:
    attempts: 5
    backoff: 2s
classifier:
  model_dir: /opt/demo/models/tiny-classifier
  threshold: 0.7
features:
  new_dashboard: false
  audit_log: true
`

const loggingJSON = `{
  "level": "info",
  "format": "json",
  "output": "stdout",
  "sampling": {
    "initial": 100,
    "thereafter": 10
  },
  "fields": {
    "service": "demo",
    "environment": "airgap"
  },
  "levels": {
    "http": "warn",
    "worker": "info"
  }
}
`

const modelReadme = `# tiny-classifier

A tiny text classifier used as sample content for airlock. It sorts short
support messages into eight labels (billing, bug, feature, question,
security, docs, performance, other).

- ` + "`config.json`" + `: model configuration.
- ` + "`tokenizer.json`" + `: word-level tokenizer.
- ` + "`model.safetensors`" + `: float32 weights (256 KiB of seeded values).

The weights are generated from a fixed seed, not trained: the model loads
but its predictions mean nothing.

License: Apache-2.0.
`

const modelConfig = `{
  "architectures": [
    "TinyClassifier"
  ],
  "model_type": "tiny-classifier",
  "vocab_size": 248,
  "hidden_size": 128,
  "num_hidden_layers": 2,
  "num_labels": 8,
  "id2label": {
    "0": "billing",
    "1": "bug",
    "2": "feature",
    "3": "question",
    "4": "security",
    "5": "docs",
    "6": "performance",
    "7": "other"
  },
  "pad_token_id": 0,
  "torch_dtype": "float32"
}
`

const tokenizerJSON = `{
  "version": "1.0",
  "truncation": null,
  "padding": null,
  "added_tokens": [
    {"id": 0, "content": "[PAD]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 1, "content": "[UNK]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 2, "content": "[CLS]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 3, "content": "[SEP]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": {"type": "Lowercase"},
  "pre_tokenizer": {"type": "Whitespace"},
  "post_processor": null,
  "decoder": null,
  "model": {
    "type": "WordLevel",
    "vocab": {
      "[PAD]": 0,
      "[UNK]": 1,
      "[CLS]": 2,
      "[SEP]": 3,
      "the": 4,
      "a": 5,
      "is": 6,
      "not": 7,
      "my": 8,
      "i": 9,
      "to": 10,
      "invoice": 11,
      "charged": 12,
      "refund": 13,
      "error": 14,
      "crash": 15,
      "broken": 16,
      "please": 17,
      "add": 18,
      "support": 19,
      "how": 20,
      "do": 21,
      "password": 22,
      "token": 23,
      "leak": 24,
      "docs": 25,
      "slow": 26,
      "timeout": 27,
      "thanks": 28
    },
    "unk_token": "[UNK]"
  }
}
`

const apiSPDX = `{
  "spdxVersion": "SPDX-2.3",
  "dataLicense": "CC0-1.0",
  "SPDXID": "SPDXRef-DOCUMENT",
  "name": "demo/api:1.0",
  "documentNamespace": "https://sbom.example.com/spdx/demo-api-1.0-6f1c9a52-3b7e-4d28-9a41-2c5e8f0b7d13",
  "creationInfo": {
    "created": "2026-01-01T00:00:00Z",
    "creators": [
      "Tool: airlock-sample-1.0",
      "Organization: Airlock Demo"
    ]
  },
  "packages": [
    {
      "SPDXID": "SPDXRef-Package-demo-api",
      "name": "demo/api",
      "versionInfo": "1.0",
      "downloadLocation": "NOASSERTION",
      "filesAnalyzed": false,
      "licenseConcluded": "NOASSERTION",
      "licenseDeclared": "Apache-2.0",
      "copyrightText": "NOASSERTION",
      "primaryPackagePurpose": "CONTAINER",
      "externalRefs": [
        {
          "referenceCategory": "PACKAGE-MANAGER",
          "referenceType": "purl",
          "referenceLocator": "pkg:oci/api?repository_url=${REGISTRY}/demo/api&tag=1.0"
        }
      ]
    },
    {
      "SPDXID": "SPDXRef-Package-airlock-demo-base",
      "name": "airlock-demo-base",
      "versionInfo": "1.0",
      "downloadLocation": "NOASSERTION",
      "filesAnalyzed": false,
      "licenseConcluded": "NOASSERTION",
      "licenseDeclared": "Apache-2.0",
      "copyrightText": "NOASSERTION",
      "primaryPackagePurpose": "OPERATING-SYSTEM",
      "externalRefs": [
        {
          "referenceCategory": "PACKAGE-MANAGER",
          "referenceType": "purl",
          "referenceLocator": "pkg:generic/airlock-demo-base@1.0"
        }
      ]
    },
    {
      "SPDXID": "SPDXRef-Package-go-uuid",
      "name": "github.com/google/uuid",
      "versionInfo": "v1.6.0",
      "downloadLocation": "NOASSERTION",
      "filesAnalyzed": false,
      "licenseConcluded": "NOASSERTION",
      "licenseDeclared": "BSD-3-Clause",
      "copyrightText": "NOASSERTION",
      "primaryPackagePurpose": "LIBRARY",
      "externalRefs": [
        {
          "referenceCategory": "PACKAGE-MANAGER",
          "referenceType": "purl",
          "referenceLocator": "pkg:golang/github.com/google/uuid@v1.6.0"
        }
      ]
    },
    {
      "SPDXID": "SPDXRef-Package-go-yaml",
      "name": "go.yaml.in/yaml/v3",
      "versionInfo": "v3.0.4",
      "downloadLocation": "NOASSERTION",
      "filesAnalyzed": false,
      "licenseConcluded": "NOASSERTION",
      "licenseDeclared": "MIT AND Apache-2.0",
      "copyrightText": "NOASSERTION",
      "primaryPackagePurpose": "LIBRARY",
      "externalRefs": [
        {
          "referenceCategory": "PACKAGE-MANAGER",
          "referenceType": "purl",
          "referenceLocator": "pkg:golang/go.yaml.in/yaml/v3@v3.0.4"
        }
      ]
    }
  ],
  "relationships": [
    {
      "spdxElementId": "SPDXRef-DOCUMENT",
      "relationshipType": "DESCRIBES",
      "relatedSpdxElement": "SPDXRef-Package-demo-api"
    },
    {
      "spdxElementId": "SPDXRef-Package-demo-api",
      "relationshipType": "DEPENDS_ON",
      "relatedSpdxElement": "SPDXRef-Package-airlock-demo-base"
    },
    {
      "spdxElementId": "SPDXRef-Package-demo-api",
      "relationshipType": "DEPENDS_ON",
      "relatedSpdxElement": "SPDXRef-Package-go-uuid"
    },
    {
      "spdxElementId": "SPDXRef-Package-demo-api",
      "relationshipType": "DEPENDS_ON",
      "relatedSpdxElement": "SPDXRef-Package-go-yaml"
    }
  ]
}
`

const workerCDX = `{
  "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
  "bomFormat": "CycloneDX",
  "specVersion": "1.5",
  "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
  "version": 1,
  "metadata": {
    "timestamp": "2026-01-01T00:00:00Z",
    "tools": {
      "components": [
        {
          "type": "application",
          "name": "airlock-sample",
          "version": "1.0"
        }
      ]
    },
    "component": {
      "type": "container",
      "bom-ref": "demo-worker",
      "name": "demo/worker",
      "version": "1.0",
      "purl": "pkg:oci/worker?repository_url=${REGISTRY}/demo/worker&tag=1.0"
    }
  },
  "components": [
    {
      "type": "operating-system",
      "bom-ref": "airlock-demo-base",
      "name": "airlock-demo-base",
      "version": "1.0",
      "purl": "pkg:generic/airlock-demo-base@1.0"
    },
    {
      "type": "library",
      "bom-ref": "pkg:golang/github.com/klauspost/compress@v1.17.11",
      "name": "github.com/klauspost/compress",
      "version": "v1.17.11",
      "licenses": [
        {
          "license": {
            "id": "BSD-3-Clause"
          }
        }
      ],
      "purl": "pkg:golang/github.com/klauspost/compress@v1.17.11"
    },
    {
      "type": "library",
      "bom-ref": "pkg:golang/golang.org/x/sync@v0.10.0",
      "name": "golang.org/x/sync",
      "version": "v0.10.0",
      "licenses": [
        {
          "license": {
            "id": "BSD-3-Clause"
          }
        }
      ],
      "purl": "pkg:golang/golang.org/x/sync@v0.10.0"
    }
  ],
  "dependencies": [
    {
      "ref": "demo-worker",
      "dependsOn": [
        "airlock-demo-base",
        "pkg:golang/github.com/klauspost/compress@v1.17.11",
        "pkg:golang/golang.org/x/sync@v0.10.0"
      ]
    }
  ]
}
`
