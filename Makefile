# The test command named in README: installs what the tests need (npm
# packages, Debian's chromium when run as root) and runs every test.
.PHONY: test test-go test-race test-alloc test-e2e deps fuzz bench bench-micro bench-100k bench-1m abuse build run vet vet-cross image image-if-present bench-webhooks

GO ?= go

# Every `go test` is bounded: a hung test fails within TEST_TIMEOUT with the
# stacks of every goroutine, instead of Go's default 10 minutes of silence.
# With -race on a 2-core machine loop took under a minute and cluster 4.3
# min (its tests run twice: on one Redis, then on a Redis Cluster); 10
# minutes leaves room for a slower CI box.
TEST_TIMEOUT ?= 10m

# The release artifact: a static binary (no cgo, no libc: it runs in a
# scratch image and on any Linux of the same architecture), with build paths
# trimmed. `make build GOOS=darwin GOARCH=arm64` cross-compiles.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/reverb ./cmd/reverb

run:
	$(GO) run ./cmd/reverb start

deps:
	bash scripts/test-deps.sh

# Allocation guards (testing.AllocsPerRun) must have "Alloc" in the test's
# name: `make test-alloc` selects them by it.
vet: vet-cross
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	@awk '/^func (Test|Benchmark)/ { name = $$2; sub(/\(.*/, "", name) } /testing\.AllocsPerRun/ && name !~ /Alloc/ { print FILENAME ": " name " calls AllocsPerRun; put Alloc in its name so make test-alloc runs it"; bad = 1 } END { exit bad }' $$(git ls-files '*_test.go')

# macOS (where Herd and Valet run) must keep building and vetting: the
# server builds there, the Linux-only parts carry build constraints. Windows
# is not a target (see README, Build).
vet-cross:
	GOOS=darwin GOARCH=arm64 $(GO) vet ./...
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/reverb
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./bench/cmd/reverb-bench

test: deps vet test-go test-e2e

test-go: test-race test-alloc

test-race:
	$(GO) test -race -shuffle=on -count=1 -timeout=$(TEST_TIMEOUT) ./...

# The allocation guards again without -race: the race detector changes
# allocation counts, so files holding the strict guards build only with
# !race and run here.
test-alloc:
	$(GO) test -count=1 -timeout=$(TEST_TIMEOUT) -run=Alloc ./...

test-e2e:
	cd e2e && npm test

# Container image: packages the static bin/reverb FROM scratch
# (Dockerfile.static) with podman or docker. `docker build .` builds from
# source anywhere with the multi-stage Dockerfile instead.
IMAGE ?= reverb:$(VERSION)
image: build
	rm -rf bin/rootfs bin/state && mkdir -p bin/rootfs/etc/ssl/certs bin/rootfs/tmp bin/state/reverb
	chmod 1777 bin/rootfs/tmp
	if [ -f /etc/ssl/certs/ca-certificates.crt ]; then cp /etc/ssl/certs/ca-certificates.crt bin/rootfs/etc/ssl/certs/; fi
	@engine=$$(bash scripts/container-engine.sh) || { echo "make image: neither podman nor docker works here" >&2; exit 1; }; \
	echo "$$engine build -f Dockerfile.static -t $(IMAGE) ."; \
	$$engine build -f Dockerfile.static -t $(IMAGE) .

# CI: build the image when a container engine works on this machine, and
# say so and succeed when none does.
image-if-present:
	@if bash scripts/container-engine.sh >/dev/null; then $(MAKE) image; else echo "no working podman or docker: image build skipped"; fi

# Short fuzzing of every fuzz target (seed corpora run in `make test` too).
fuzz:
	$(GO) test ./wsproto -run='^$$' -fuzz=FuzzReader -fuzztime=20s -timeout=3m
	$(GO) test ./wsproto -run='^$$' -fuzz=FuzzParseRequest -fuzztime=20s -timeout=3m
	$(GO) test ./pusher -run='^$$' -fuzz=FuzzDecode -fuzztime=20s -timeout=3m
	$(GO) test ./cluster -run='^$$' -fuzz=FuzzDecode -fuzztime=20s -timeout=3m

# Short load run (< 2 min): connect + fanout against this server and the
# bare write(2) reference server, printed side by side (bench/run-short.sh).
bench:
	bash bench/run-short.sh

# 100,000 subscribed connections over several server processes bridged by
# Redis, and one broadcast timed to all of them (scripts/bench-100k.sh).
bench-100k:
	bash scripts/bench-100k.sh

# 1,000,000 subscribed connections over as many server processes as it
# takes, held idle for a minute answering pings, then one timed broadcast
# (scripts/bench-1m.sh; run scripts/tune-host.sh --apply --conns 1m first).
bench-1m:
	bash scripts/bench-1m.sh

# Webhook target: 1,000 presence members join and leave in a burst, on one
# node and on three nodes with a real redis-server (README, "Webhooks").
bench-webhooks:
	$(GO) test -run='^$$' -bench=WebhookPresenceBurst -benchtime=1x -timeout=10m ./cluster

# Hot-path micro-benchmarks (allocation counts per operation).
bench-micro:
	$(GO) test -run='^$$' -bench=. -benchmem -timeout=30m ./wsproto ./pusher ./hub

# The abuse suite at scale (bench/abuse): channel floods, dribbled and
# silent heads, broken frames at rate, client-event floods, stalled
# readers, each against the real binary; prints every figure with its
# target and fails when one is missed. Short versions run in `make test`.
abuse:
	ABUSE_SCALE=1 $(GO) test -v -count=1 -timeout 30m ./bench/abuse
