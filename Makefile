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

.PHONY: all build cross lint test test-go test-long fuzz systools bench demo clean package install

all: build

# patchd, patch-agent and patchctl land in bin/.
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

# The agent runs on Windows and macOS endpoints too, as a service there
# (agent/service: files only those systems build).
cross:
	GOOS=windows GOARCH=amd64 $(GO) build -ldflags "$(LDFLAGS)" -o /dev/null ./cmd/patch-agent
	GOOS=darwin GOARCH=arm64 $(GO) build -ldflags "$(LDFLAGS)" -o /dev/null ./cmd/patch-agent
	GOOS=windows GOARCH=amd64 $(GO) vet ./agent/service
	GOOS=darwin GOARCH=arm64 $(GO) vet ./agent/service

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

# Release archives in dist/: the .deb and .rpm of patchd and patch-agent
# for each Linux target, patch-agent's .tar.gz for macOS and .zip for
# Windows (internal/packaging). The binaries are static (CGO_ENABLED=0),
# stripped (-s -w, as lintian wants) and carry $(VERSION).
VERSION         ?= $(shell cat VERSION)
PACKAGE_TARGETS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
PACKAGE_LDFLAGS := -s -w -X github.com/patchline/patchline/internal/buildinfo.version=$(VERSION)

package:
	rm -rf dist
	@set -e; for t in $(PACKAGE_TARGETS); do \
	  os=$${t%/*}; arch=$${t#*/}; bins=patch-agent; \
	  [ "$$os" = linux ] && bins="patchd patch-agent"; \
	  for b in $$bins; do \
	    echo "building $$b for $$t"; \
	    CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(PACKAGE_LDFLAGS)" \
	      -o dist/bin/$${os}_$${arch}/ ./cmd/$$b; \
	  done; \
	done
	$(GO) run ./internal/packaging/cmd/mkpkg -bin dist/bin -out dist -version $(VERSION) \
	  -time $$(git log -1 --format=%ct 2>/dev/null || date +%s) -targets "$(PACKAGE_TARGETS)"
	rm -rf dist/bin

# make install [PREFIX=/usr/local] [DESTDIR=]: the three binaries to
# $(PREFIX)/bin; the systemd units, their ExecStart pointed there, to
# $(UNITDIR) (systemd reads /usr/local/lib/systemd/system too; for another
# PREFIX give UNITDIR=/etc/systemd/system); the example configuration
# files to /etc/patchline/patchd.yaml and /etc/patch-agent/agent.yaml,
# only where none is yet.
PREFIX  ?= /usr/local
UNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL_BIN ?= bin

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)/etc/patchline $(DESTDIR)/etc/patch-agent
	install -m 0755 $(INSTALL_BIN)/patchd $(INSTALL_BIN)/patch-agent $(INSTALL_BIN)/patchctl $(DESTDIR)$(PREFIX)/bin/
	@for u in patchd patch-agent; do \
	  echo "installing $(DESTDIR)$(UNITDIR)/$$u.service"; \
	  sed 's|^ExecStart=[^ ]*/'$$u' |ExecStart=$(PREFIX)/bin/'$$u' |' examples/systemd/$$u.service \
	    > $(DESTDIR)$(UNITDIR)/$$u.service && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.service || exit 1; \
	done
	@for c in patchline/patchd.yaml:patchd.yaml patch-agent/agent.yaml:agent.yaml; do \
	  dst=$(DESTDIR)/etc/$${c%%:*}; \
	  if [ -e "$$dst" ]; then echo "keeping $$dst"; \
	  else echo "installing $$dst"; install -m 0644 examples/config/$${c#*:} "$$dst" || exit 1; fi; \
	done

clean:
	rm -rf bin .demo dist
