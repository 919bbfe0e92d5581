# The test command named in README: installs what the tests need (npm
# packages, Debian's chromium when run as root) and runs every test.
.PHONY: test test-go test-e2e deps fuzz bench bench-micro bench-100k bench-webhooks build run vet

GO ?= go

build:
	$(GO) build -o bin/reverb ./cmd/reverb

run:
	$(GO) run ./cmd/reverb start

deps:
	bash scripts/test-deps.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)

test: deps vet test-go test-e2e

test-go:
	$(GO) test -race -shuffle=on -count=1 ./...

test-e2e:
	cd e2e && npm test

# Short fuzzing of every fuzz target (seed corpora run in `make test` too).
fuzz:
	$(GO) test ./wsproto -run='^$$' -fuzz=FuzzReader -fuzztime=20s
	$(GO) test ./wsproto -run='^$$' -fuzz=FuzzParseRequest -fuzztime=20s
	$(GO) test ./pusher -run='^$$' -fuzz=FuzzDecode -fuzztime=20s
	$(GO) test ./cluster -run='^$$' -fuzz=FuzzDecode -fuzztime=20s

# Short load run (< 2 min): connect + fanout against this server and the
# bare write(2) reference server, printed side by side (bench/run-short.sh).
bench:
	bash bench/run-short.sh

# 100,000 subscribed connections over several server processes bridged by
# Redis, and one broadcast timed to all of them (scripts/bench-100k.sh).
bench-100k:
	bash scripts/bench-100k.sh

# Webhook target: 1,000 presence members join and leave in a burst, on one
# node and on three nodes with a real redis-server (README, "Webhooks").
bench-webhooks:
	$(GO) test -run='^$$' -bench=WebhookPresenceBurst -benchtime=1x ./cluster

# Hot-path micro-benchmarks (allocation counts per operation).
bench-micro:
	$(GO) test -run='^$$' -bench=. -benchmem ./wsproto ./pusher ./hub
