# Spate's Makefile. `make help` lists the targets. Everything a target needs
# (Go tools pinned in go.mod, benchmark peers) is built or installed by the
# target itself, so each works on a fresh machine.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
BIN       := $(CURDIR)/bin
SPATE     := $(BIN)/spate
PKGS      := ./...
TESTFLAGS ?=
export GOFLAGS ?=

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the spate binary into bin/spate
	$(GO) build -o $(SPATE) ./cli/cmd/spate

.PHONY: test
test: build ## Run vet and the whole test suite (race detector on; installs Chromium and the Versity S3 Gateway for the tests)
	infra/scripts/install-chromium.sh
	infra/scripts/install-versitygw.sh
	$(GO) vet $(PKGS)
	SPATE_BIN=$(SPATE) $(GO) test -race -timeout 25m $(TESTFLAGS) $(PKGS)

.PHONY: test-short
test-short: ## Run the fast tests only
	$(GO) test -short $(PKGS)

.PHONY: lint
lint: ## go vet, staticcheck, gofmt and buf lint
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "not gofmt'ed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	cd api && $(GO) tool buf lint

.PHONY: generate
generate: ## Regenerate the Go and Connect code from api/*.proto
	cd api && $(GO) tool buf generate

.PHONY: checkgenerate
checkgenerate: generate ## Fail if the committed generated code is not what `make generate` makes
	@git diff --exit-code -- api/gen || { echo "generated code is out of date: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api/gen)" || { echo "untracked generated files:"; git status --porcelain -- api/gen; exit 1; }

.PHONY: run
run: build ## Start a local cluster (spate local up --spus 3) and run a demo that produces and consumes
	$(CURDIR)/infra/scripts/demo.sh $(SPATE)

.PHONY: bench
bench: build ## Run the benchmark scenarios against Spate and NATS JetStream, and tiered storage against a local Versity S3 Gateway; writes bench/RESULTS.md and bench/results.json
	infra/scripts/install-versitygw.sh
	$(GO) run ./bench/cmd/spatebench -spate $(SPATE) -out bench

.PHONY: gobench
gobench: ## Run the Go micro-benchmarks of the hot paths (object store ones against a local Versity S3 Gateway)
	infra/scripts/install-versitygw.sh
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 30s)
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $${FUZZTIME:-30s} ./internal/batch/

.PHONY: clean
clean: ## Remove build output
	rm -rf $(BIN)
