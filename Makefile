# airlock — see README.md. Every target uses the machine's own Go toolchain.
export GOTOOLCHAIN := local
GO      ?= go
BIN     := bin/airlock
# Where `make tools` puts the Go-built tools the tests use (cosign, ...),
# outside the clone so a fresh clone reuses them; added to PATH for tests.
TOOLS_CACHE ?= /var/cache/airlock-ci
export PATH := $(TOOLS_CACHE)/bin:$(PATH)
COSIGN_VERSION := v2.6.5
# The helm CLI the chart tests pull with; the same Helm as go.mod's library.
HELM_VERSION := v4.3.2
# oras and crane read an extracted bundle by name in the layout tests
# (docs/format.md section 14); CRANE_VERSION is go.mod's go-containerregistry.
ORAS_VERSION := v1.3.6
CRANE_VERSION := v0.22.1
# Debian packages the tests run for real (chromium and poppler-utils render
# and read the reviewer report as a person would; softhsm2 holds the
# PKCS#11 test keys; jq picks one image out of an extracted bundle for crane).
DEB_PACKAGES := docker-registry skopeo zstd tar jq chromium poppler-utils softhsm2

.PHONY: all build test demo bench fuzz lint tools tools-conformance check-tools clean

# The OCI distribution-spec conformance program, pinned (registry/serve_conformance_test.go
# pins the same version and runs it against airlock serve).
OCI_CONFORMANCE_MODULE  := github.com/opencontainers/distribution-spec/conformance
OCI_CONFORMANCE_VERSION := v0.0.0-20260831232431-97274622c111
OCI_CONFORMANCE_BIN     := $(TOOLS_CACHE)/bin/oci-conformance

all: build

build:
	$(GO) build -trimpath -buildvcs=auto -o $(BIN) ./cmd/airlock

# tools installs what the tests need, once: the Debian packages (as root)
# and the Go-built tools into $(TOOLS_CACHE)/bin, each built only when it
# is not there yet. It prints one line for each thing it installs.
tools:
	@if [ "$$(id -u)" -ne 0 ]; then echo "make tools: run as root (sudo make tools): it installs Debian packages" >&2; exit 1; fi
	@missing=""; for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make tools: installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null || exit 1; \
	fi
	@mkdir -p $(TOOLS_CACHE)/bin
	@if [ ! -x $(TOOLS_CACHE)/bin/cosign ]; then \
	  echo "make tools: building cosign $(COSIGN_VERSION) into $(TOOLS_CACHE)/bin (once; about 10 minutes on 2 cores)"; \
	  GOBIN=$(TOOLS_CACHE)/bin $(GO) install github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION) || exit 1; \
	fi
	@if [ ! -x $(TOOLS_CACHE)/bin/helm ]; then \
	  echo "make tools: building helm $(HELM_VERSION) into $(TOOLS_CACHE)/bin (once; 10 to 30 minutes on 2 cores)"; \
	  GOBIN=$(TOOLS_CACHE)/bin $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION) || exit 1; \
	fi
	@if [ ! -x $(TOOLS_CACHE)/bin/oras ]; then \
	  echo "make tools: building oras $(ORAS_VERSION) into $(TOOLS_CACHE)/bin (once; a few minutes on 2 cores)"; \
	  GOBIN=$(TOOLS_CACHE)/bin $(GO) install oras.land/oras/cmd/oras@$(ORAS_VERSION) || exit 1; \
	fi
	@if [ ! -x $(TOOLS_CACHE)/bin/crane ]; then \
	  echo "make tools: building crane $(CRANE_VERSION) into $(TOOLS_CACHE)/bin (once; about a minute)"; \
	  GOBIN=$(TOOLS_CACHE)/bin $(GO) install github.com/google/go-containerregistry/cmd/crane@$(CRANE_VERSION) || exit 1; \
	fi
	@$(MAKE) --no-print-directory tools-conformance

# check-tools: as root, install what is missing (make tools: quick when
# everything is there); as anyone else, stop at once naming the one command
# that installs it.
check-tools:
	@if [ "$$(id -u)" -eq 0 ]; then $(MAKE) --no-print-directory tools || exit 1; exit 0; fi; \
	missing=""; \
	for t in docker-registry skopeo zstd tar jq softhsm2-util cosign helm oras crane oci-conformance chromium pdftotext; do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then echo "make test: missing:$$missing. Install what is missing with: sudo make tools" >&2; exit 1; fi

# Build the pinned conformance program into the tools cache, unless the binary
# there already is that version. The module's main package is built with
# go install into a temporary directory next to the target, then renamed.
tools-conformance:
	@if $(GO) version -m "$(OCI_CONFORMANCE_BIN)" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$(OCI_CONFORMANCE_MODULE)[[:space:]]+$(OCI_CONFORMANCE_VERSION)[[:space:]]"; then \
		exit 0; \
	fi; \
	echo "building $(OCI_CONFORMANCE_MODULE)@$(OCI_CONFORMANCE_VERSION) into $(OCI_CONFORMANCE_BIN)"; \
	mkdir -p "$(TOOLS_CACHE)/bin" && \
	tmp=$$(mktemp -d "$(TOOLS_CACHE)/bin/.oci-conformance.XXXXXX") && \
	trap 'rm -rf "$$tmp"' EXIT && \
	GOBIN="$$tmp" $(GO) install -trimpath $(OCI_CONFORMANCE_MODULE)@$(OCI_CONFORMANCE_VERSION) && \
	mv "$$tmp/conformance" "$(OCI_CONFORMANCE_BIN)"

# CI=true makes every test that needs an external tool fail instead of skipping.
test: check-tools lint
	CI=true $(GO) test -count=1 -timeout 20m ./...

demo: build
	$(GO) run ./cmd/airlock-demo -airlock $(BIN)

bench: build
	AIRLOCK_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./internal/benchmark/

# Every fuzz target, FUZZTIME each (make fuzz FUZZTIME=60s). A short
# -fuzzminimizetime keeps the engine fuzzing instead of spending the run
# minimizing one new input; seeds are in each package's testdata/fuzz.
FUZZTIME ?= 10s
FUZZMINIMIZETIME ?= 2s
FUZZPARALLEL ?= 2
FUZZ_TARGETS := ./bundle:FuzzReader ./bundle:FuzzFrameIndex ./pack:FuzzParseSpec ./install:FuzzState ./internal/sbom:FuzzSummarize ./internal/sbom:FuzzList \
	./policy:FuzzParse ./internal/strictjson:FuzzUnmarshal ./internal/strictjson:FuzzCheck \
	./internal/strictjson:FuzzFastWalk ./internal/safepath:FuzzTargets ./bundle:FuzzDecodeBoth ./bundle:FuzzFastDecodeUnion \
	./cosign:FuzzParse ./cosign:FuzzVerify ./internal/keys:FuzzParsePublic ./registry:FuzzServeParseReferrer
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== $$fn ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) -parallel $(FUZZPARALLEL) $$pkg; \
	done

# lint: gofmt, go vet, and go.mod/go.sum exactly as go mod tidy leaves them.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:" >&2; echo "$$out" >&2; exit 1; fi
	@diff=$$($(GO) mod tidy -diff 2>&1); if [ -n "$$diff" ]; then echo "go mod tidy would change go.mod/go.sum (run go mod tidy):" >&2; echo "$$diff" >&2; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin demo-out demo-root
