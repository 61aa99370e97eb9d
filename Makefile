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
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

.PHONY: all build test lint unit demo bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/firstlook ./cmd/firstlook

## test: formatting, vet, staticcheck, then every test with the race detector.
## Integration tests need root and OpenSSH's sshd; without them they skip with
## the reason, unless FIRSTLOOK_REQUIRE_INTEGRATION=1 (CI), where they fail.
test: lint
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)

## unit: the tests without the race detector, quicker while editing.
unit:
	$(GO) test -count=1 $(PKGS)

demo:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/firstlook demo

## bench: the intake against a no-op handler, then one playbook on 1 and 20
## hosts behind a bastion with 20 ms RTT per hop against OpenSSH ssh -J, each
## in the same run (see README; the SSH half needs root and sshd), and an
## alert storm against serve as a process, steady and killed half-way.
bench:
	$(GO) test -run '^$$' -bench Intake -benchtime 100000x -count 1 -timeout 30m ./cmd/firstlook/ | grep -v '^Benchmark'
	$(GO) test -run '^$$' -bench Storm -benchtime 1x -count 1 -timeout 30m ./cmd/firstlook/ | grep -v '^Benchmark'
	$(GO) test -run '^$$' -bench PlaybookSSH -benchtime 8x -count 1 -timeout 15m ./runner/internal/sshbench/ | grep -v '^Benchmark'

clean:
	rm -rf bin .demo
