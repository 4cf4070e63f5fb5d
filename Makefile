# weir — see README.md. On a fresh Debian machine with Go 1.26, `make test` and `make demo`
# are the whole set-up: both run scripts/setup-debian.sh, which installs what they need.
GO      ?= go
BIN     := bin/weir
# Where man pages, completions and the .deb go.
BUILD   := build
PKGS    := ./...
# A loaded 2-core machine runs the namespace tests slowly; the deadline is generous on purpose.
TESTFLAGS ?= -count=1 -timeout 40m

# What the binary says it is (`weir version`), and the time every generated file carries,
# so that two builds of one commit give the same bytes.
VERSION           ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT            ?= $(shell git rev-parse HEAD 2>/dev/null)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH
# A static binary (no cgo), without build paths or a build ID, stamped with the version and
# the commit (-X; the go command's VCS stamping adds the commit too, except in a git worktree).
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags '-s -w -buildid= -X main.version=$(VERSION) -X main.commit=$(COMMIT)'
# Debian versions start with a digit: v1.2.3 → 1.2.3, v1.2.3-4-gabc → 1.2.3+4+gabc, abc → 0.0.0~gitabc
# (git describe prints the commit alone where there is no tag).
PKG_VERSION := $(shell echo '$(VERSION)' | sed -e 's/^v\([0-9]\)/\1/' -e 't tag' -e 's/^/0.0.0~git/' -e ':tag' -e 's/-/+/g')
# nfpm, pinned, run through the Go module proxy like any module (not a dependency of weir).
NFPM    := $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

.PHONY: all setup build test lint fuzz bench demo man completions package reproducible clean

all: build

# Installs the Debian packages tests, demo and packaging need (as root; else it says what is missing).
setup:
	@bash scripts/setup-debian.sh

build:
	$(GOBUILD) -o $(BIN) ./cmd/weir

# Unit tests, the fuzz seed corpus, and — when root — the network-namespace tests.
# e2e tests run the real binary, so it is built first.
test: setup build
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
bench: setup build
	@if [ "$$(id -u)" != 0 ]; then echo "make bench needs root: it creates network namespaces, programs iptables in them and runs weir agents in a lab of namespaces (try: sudo make bench)"; exit 1; fi
	$(GO) run ./e2e/bench -out BENCHMARKS.md

# The main job on a local 3-host network of namespaces: push specs, converge, balance, change weights.
demo: setup build
	$(GO) run ./e2e/demo

# Man pages (weir(1), weir-COMMAND(1)) into $(BUILD)/man.
man: build
	rm -rf $(BUILD)/man
	$(BIN) man $(BUILD)/man

# Shell completion scripts into $(BUILD)/completions.
completions: build
	mkdir -p $(BUILD)/completions
	$(BIN) completion bash > $(BUILD)/completions/weir.bash
	$(BIN) completion zsh > $(BUILD)/completions/_weir
	$(BIN) completion fish > $(BUILD)/completions/weir.fish

# $(BUILD)/weir_VERSION_ARCH.deb: the binary, the systemd unit, the env file (a conffile), man
# pages, completions and the Grafana dashboard (dist/nfpm.yaml). Reproducible: every file and
# the package carry SOURCE_DATE_EPOCH.
package: setup man completions
	gzip -9nf $(BUILD)/man/*.1
	rm -f $(BUILD)/*.deb
	WEIR_BIN='$(BIN)' WEIR_BUILD='$(BUILD)' WEIR_PKG_VERSION='$(PKG_VERSION)' GOARCH=$$($(GO) env GOARCH) \
		$(NFPM) package -f dist/nfpm.yaml -p deb -t $(BUILD)/

# Proves the build is reproducible: a second build with an empty build cache gives the same bytes.
reproducible:
	@dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	$(GOBUILD) -o "$$dir/first" ./cmd/weir && \
	GOCACHE="$$dir/cache" $(GOBUILD) -o "$$dir/second" ./cmd/weir && \
	cmp "$$dir/first" "$$dir/second" && \
	echo "reproducible: two builds of $(VERSION) are byte-identical (sha256 $$(sha256sum < "$$dir/first" | cut -c1-16))"

clean:
	rm -rf bin $(BUILD)
