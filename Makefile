# The commands a newcomer types: `make demo` and `make test`.
GO ?= go

.PHONY: deps demo test bench vet

deps:
	@bash scripts/install-deps.sh

demo: deps
	$(GO) run ./cmd/demo

test: deps
	$(GO) test -race -count=1 -timeout 20m ./...
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
