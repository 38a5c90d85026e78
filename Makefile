# The commands a newcomer types: `make demo` and `make test`.
GO ?= go

.PHONY: deps demo test bench vet

deps:
	@bash scripts/install-deps.sh

demo: deps
	$(GO) run ./cmd/demo

# internal/faults runs without -race: go-zookeeper v1.0.4 reads and writes its lastZxid without a
# lock when it re-sets watches on a reconnect (conn.go, sendSetWatches and recvLoop), and the fault
# tests reconnect often enough to trip the race detector on that. Everything of ours runs under
# -race in the other packages.
test: deps
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v /internal/faults)
	$(GO) test -count=1 -timeout 20m ./internal/faults/
	cd examples/gocron && $(GO) test -race -count=1 -timeout 10m ./...

# make bench: gocurator and Apache Curator 5.4 (testdata/zkbench/ZkBench.java) in alternation, three
# rounds each, against one fresh ZooKeeper; a table of medians (see BENCHMARKS.md). BENCHFLAGS adds
# zkbench flags, e.g. BENCHFLAGS='-recipe write' or BENCHFLAGS='-server host:2181'.
bench: deps
	$(GO) run ./cmd/zkbench -compare -rounds 3 $(BENCHFLAGS)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	cd examples/gocron && $(GO) vet ./...
