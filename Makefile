# airlock — see README.md. Every target uses the machine's own Go toolchain.
export GOTOOLCHAIN := local
GO      ?= go
BIN     := bin/airlock
# Where .ci/run installs cosign; added to PATH so tests find it.
TOOLS_CACHE ?= /var/cache/airlock-ci
export PATH := $(TOOLS_CACHE)/bin:$(PATH)

.PHONY: all build test demo bench lint check-tools clean

all: build

build:
	$(GO) build -trimpath -buildvcs=auto -o $(BIN) ./cmd/airlock

# The tests use real tools; name each missing one and how to get it, then stop.
check-tools:
	@missing=0; \
	check() { if ! command -v "$$1" >/dev/null 2>&1; then echo "make test: required tool '$$1' is missing: $$2" >&2; missing=1; fi; }; \
	check docker-registry "apt-get install docker-registry (the CNCF distribution registry)"; \
	check skopeo "apt-get install skopeo"; \
	check zstd "apt-get install zstd"; \
	check tar "apt-get install tar"; \
	check cosign "GOBIN=$(TOOLS_CACHE)/bin go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5 (about 10 minutes; .ci/run does it once and caches it)"; \
	if [ $$missing -ne 0 ]; then echo "make test: install the tools above (or run .ci/run as root, which installs them) and try again" >&2; exit 1; fi

# CI=true makes every test that needs an external tool fail instead of skipping.
test: check-tools lint
	CI=true $(GO) test -count=1 -timeout 20m ./...

demo: build
	$(GO) run ./internal/demo -airlock $(BIN)

bench: build
	AIRLOCK_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./internal/benchmark/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:" >&2; echo "$$out" >&2; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin demo-out demo-root
