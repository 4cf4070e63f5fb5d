# weir — see README.md. Every target works on a fresh Debian machine with Go 1.26.
GO      ?= go
BIN     := bin/weir
PKGS    := ./...
# A loaded 2-core machine runs the namespace tests slowly; the deadline is generous on purpose.
TESTFLAGS ?= -count=1 -timeout 40m

.PHONY: all build test lint fuzz bench demo clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/weir

# Unit tests, the fuzz seed corpus, and — when root — the network-namespace tests.
# e2e tests run the real binary, so it is built first.
test: build
	$(GO) test $(TESTFLAGS) $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Longer fuzzing of the spec loader (the seed corpus already runs in make test).
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./spec -run '^$$' -fuzz FuzzLoad -fuzztime $(FUZZTIME)

# Every row of the benchmark suite (about 15-20 minutes on 2 cores): one table on stdout, written
# to BENCHMARKS.md with the machine and the command for each row. Needs root (namespaces, iptables).
bench: build
	@if [ "$$(id -u)" != 0 ]; then echo "make bench needs root: it creates network namespaces, programs iptables in them and runs weir agents in a lab of namespaces (try: sudo make bench)"; exit 1; fi
	$(GO) run ./e2e/bench -out BENCHMARKS.md

# The main job on a local 3-host network of namespaces: push specs, converge, balance, change weights.
demo: build
	$(GO) run ./e2e/demo

clean:
	rm -rf bin
