# xacctd — every target works on a fresh machine of this project's kind (see README.md).
GO          ?= go
BIN         := bin
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 10s
# Minimizing a new interesting input defaults to 60 s and can outlast a brief -fuzztime, which
# go test then reports as "context deadline exceeded": keep it short.
FUZZMINTIME ?= 1s
PKGS        := ./...
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X github.com/xacctd/xacctd/internal/cli.Version=$(VERSION)

.PHONY: all build test test-unit fuzz-brief fuzz bench lint demo deps clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/xacctd ./cmd/xacctd
	@if [ -d cmd/xacctd-sandbox ]; then $(GO) build -o $(BIN)/xacctd-sandbox ./cmd/xacctd-sandbox; fi

# deps checks (and where it can, installs) what the sandbox needs: moto, PostgreSQL.
deps:
	@scripts/sandbox-deps.sh

# Every test: unit, integration against the sandbox (started by the tests themselves), and a
# brief run of each fuzz target.
test: deps
	$(GO) test -count=1 -timeout 14m $(PKGS)
	@$(MAKE) --no-print-directory fuzz-brief

# Each fuzz target, as package:Target. go test -fuzz takes one target of one package a run.
FUZZ_TARGETS := ./pkg/config:FuzzLoad ./pkg/policy:FuzzMergeSplit ./internal/redshiftsim:FuzzParse ./pkg/jobsql:FuzzQuoteLiteral

fuzz-brief:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) $$pkg; \
	done

# Longer fuzzing: make fuzz FUZZTIME=10m
fuzz: FUZZTIME = 2m
fuzz: FUZZMINTIME = 10s
fuzz: fuzz-brief

# Figures, not pass/fail: every benchmark, then docs/performance.md is rewritten from them.
# The sandbox benchmarks (reconcile, daemon) run once per size; calls are their stable figure.
bench:
	@bench/run.sh

lint:
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

demo: deps build
	@scripts/demo.sh

clean:
	rm -rf $(BIN)
