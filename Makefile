# Patchline: `make demo` shows it working, `make test` proves it.
GO          ?= go
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
# actionlint checks the GitHub workflows of fleet-repo-template; its Go
# test runs it (and fails without it under CI=true).
ACTIONLINT  := $(GOBIN)/actionlint
ACTIONLINT_VERSION := v1.7.12
# yamllint (the Debian package, installed by .ci/systools.sh) checks all of
# the template's CI files with its default configuration.
FUZZTIME    ?= 5s
DEMO_DIR    ?= $(CURDIR)/.demo
# The version every binary reports (`version`, /v1/status, the agent's
# reports, patchline_build_info): VERSION, or VERSION=x.y.z on the
# command line.
VERSION     ?= $(shell cat VERSION)
LDFLAGS     := -X github.com/patchline/patchline/internal/buildinfo.version=$(VERSION)

.PHONY: all build cross lint test test-go test-long fuzz systools bench demo clean

all: build

# patchd, patch-agent and patchctl land in bin/.
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

# The agent runs on Windows and macOS endpoints too.
cross:
	GOOS=windows GOARCH=amd64 $(GO) build -ldflags "$(LDFLAGS)" -o /dev/null ./cmd/patch-agent
	GOOS=darwin GOARCH=arm64 $(GO) build -ldflags "$(LDFLAGS)" -o /dev/null ./cmd/patch-agent

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(ACTIONLINT):
	$(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

systools:
	@GO=$(GO) bash .ci/systools.sh

# Every test, with the race detector, then each fuzz target briefly.
test: lint cross systools fuzz test-go

test-go: $(ACTIONLINT)
	$(GO) test -race -count=1 ./...

fuzz:
	@bash .ci/fuzz.sh $(FUZZTIME)

# The end-to-end suite's long mode (tens of minutes, not part of make
# test): 500 agents through 20 kills of patchd, agents killed inside
# installs, a faulty network, a 30 s controller outage, a full disk on a
# small tmpfs (as root). The log goes to test-long.log; the last figures
# are in BENCHMARKS.md.
test-long: systools
	@bash .ci/test-long.sh test-long.log

# Go benchmarks (load, plan, store, API, reconcile, the plan command),
# BENCH_COUNT runs each with a table of medians, then the macro benchmark.
# Figures: BENCHMARKS.md.
BENCH_COUNT ?= 5
bench: bench-go bench-macro

bench-go:
	@bash .ci/bench.sh $(BENCH_COUNT)

# The 10,000-agent macro benchmark: patchd plus `patchctl sim` on loopback,
# MACRO_RUNS times. Minutes, not part of `make test`.
MACRO_RUNS ?= 3
bench-macro:
	@bash .ci/bench-macro.sh $(MACRO_RUNS)

demo: build
	@bash examples/demo.sh $(DEMO_DIR)

clean:
	rm -rf bin .demo
