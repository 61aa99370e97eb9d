# firstlook: make test runs everything CI runs; make demo shows the whole
# path on this machine without root; make bench measures.

# A failing benchmark must fail make bench, even though its output is
# filtered through grep.
SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -c

GO        ?= go
PKGS      ?= ./...
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

# Pinned tools, installed by the tools target into .tools/ (one directory
# per version, so bumping a pin installs the new one; rm -rf .tools to
# start over).
STATICCHECK_VERSION := v0.8.2
VERSITYGW_VERSION   := v1.8.0
PRISM_VERSION       := 5.16.0
# v0.35.0's module lacks the UI assets and does not go install.
ALERTMANAGER_VERSION := v0.31.1
TOOLS       := $(CURDIR)/.tools
STATICCHECK := $(TOOLS)/staticcheck@$(STATICCHECK_VERSION)/staticcheck
VERSITYGW   := $(TOOLS)/versitygw@$(VERSITYGW_VERSION)/versitygw
PRISM       := $(TOOLS)/prism@$(PRISM_VERSION)/node_modules/.bin/prism
ALERTMANAGER := $(TOOLS)/alertmanager@$(ALERTMANAGER_VERSION)/alertmanager

# What the integration tests need from Debian: sshd for the bastion and
# hosts in network namespaces; ip (iproute2) and unshare/nsenter
# (util-linux) to build them; procps, lsof and curl so the library
# playbooks' full paths run on the test hosts; sudo for the library's run as
# an unprivileged user with the documented sudo rules (in the test hosts'
# own /etc/sudoers.d: the machine's sudoers are untouched); chromium to
# render the evidence page, promtool (prometheus) to check the alerting
# rules and systemd-analyze (systemd) to check the hardened unit.
DEBIAN_PACKAGES := openssh-server openssh-client iproute2 util-linux procps lsof curl ca-certificates sudo \
	chromium prometheus systemd

.PHONY: all build test lint tools system-packages unit demo bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/firstlook ./cmd/firstlook

## test: formatting, vet, staticcheck, then every test with the race detector.
## It installs what it uses first (tools; as root, Debian packages). The
## integration tests need root and OpenSSH's sshd; without them they skip
## and the run ends by naming them, unless FIRSTLOOK_REQUIRE_INTEGRATION=1
## (CI), where they fail.
test: tools lint
	@if [ -x $(PRISM) ] && [ -z "$$FIRSTLOOK_PRISM" ]; then export FIRSTLOOK_PRISM=$(PRISM); fi; \
	export FIRSTLOOK_VERSITYGW=$${FIRSTLOOK_VERSITYGW:-$(VERSITYGW)}; \
	export FIRSTLOOK_ALERTMANAGER=$${FIRSTLOOK_ALERTMANAGER:-$(ALERTMANAGER)}; \
	echo "$(GO) test -race -count=1 -timeout 20m $(PKGS)"; \
	$(GO) build -o $(TOOLS)/testsummary ./cmd/firstlook/internal/testsummary && \
	$(GO) test -json -race -count=1 -timeout 20m $(PKGS) 2>&1 | $(TOOLS)/testsummary

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@out=$$($(GO) run golang.org/x/tools/cmd/goimports@v0.51.0 -l -local github.com/firstlook/firstlook $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "import groups (std, third-party, github.com/firstlook/firstlook) needed: goimports -w -local github.com/firstlook/firstlook"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)

## tools: the pinned Go tools, Prism (when npm is there) and, as root with
## apt, the Debian packages. Each is installed once.
tools: system-packages $(STATICCHECK) $(VERSITYGW) $(ALERTMANAGER) prism

$(STATICCHECK):
	GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(VERSITYGW):
	GOBIN=$(dir $@) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

$(ALERTMANAGER):
	GOBIN=$(dir $@) $(GO) install github.com/prometheus/alertmanager/cmd/alertmanager@$(ALERTMANAGER_VERSION)

# Prism serves the official PagerDuty spec to the publisher's tests. It
# needs Node.js (>= 20 works; the package declares >= 24.18) and npm; as
# root they come from apt when missing. Without npm the Prism tests skip.
.PHONY: prism
prism:
	@if [ -x $(PRISM) ]; then exit 0; fi; \
	if ! command -v npm >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "apt-get install nodejs npm"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }; \
	fi; \
	if command -v npm >/dev/null; then \
		echo "npm install @stoplight/prism-cli@$(PRISM_VERSION) into $(TOOLS)"; \
		timeout 900 npm install --prefix $(TOOLS)/prism@$(PRISM_VERSION) --save-exact --no-audit --no-fund --loglevel=error @stoplight/prism-cli@$(PRISM_VERSION) >/dev/null || \
		echo "npm install failed: the PagerDuty tests against Prism will skip (or fail under FIRSTLOOK_REQUIRE_INTEGRATION=1)"; \
	else \
		echo "no npm: the PagerDuty tests against Prism will skip (sudo make test, or install nodejs and npm)"; \
	fi

# Debian packages: installed only as root with apt-get, only those missing.
system-packages:
	@missing=; for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "not installing Debian packages$$missing (needs root and apt-get): the tests that need them will skip"; exit 0; \
	fi; \
	echo "apt-get install$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && \
	apt-get install -y -qq --no-install-recommends $$missing >/dev/null

## unit: the tests without the race detector, quicker while editing.
unit:
	$(GO) test -count=1 $(PKGS)

demo:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/firstlook demo

## bench: the intake against a no-op handler, then one playbook on 1 and 20
## hosts behind a bastion with 20 ms RTT per hop against OpenSSH ssh -J, each
## in the same run (see README; the SSH half needs root and sshd).
bench:
	$(GO) test -run '^$$' -bench Intake -benchtime 100000x -count 1 -timeout 30m ./cmd/firstlook/ | grep -v '^Benchmark'
	$(GO) test -run '^$$' -bench PlaybookSSH -benchtime 8x -count 1 -timeout 15m ./runner/internal/sshbench/ | grep -v '^Benchmark'
	$(GO) test -run '^$$' -bench Redact -benchtime 5x -count 1 -timeout 10m ./evidence/ | grep -v '^Benchmark'

clean:
	rm -rf bin .demo .tools
