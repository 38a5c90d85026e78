# The commands a newcomer types: `make demo` and `make test`.
GO ?= go

.PHONY: deps demo test test-docker bench vet fuzz

deps:
	@bash scripts/install-deps.sh

demo: deps
	$(GO) run ./cmd/demo

# Every test runs under -race, the fault tests and the soak included. go-zookeeper v1.0.4 has one
# known data race of its own: it writes Conn.lastZxid in recvLoop and reads it unsynchronised when it
# re-sends watches and authenticates on a reconnect (conn.go). So the tests build against a copy of
# that module, made from the module cache into $(RACE_DIR) by internal/tools/raceoverlay, whose
# lastZxid is an atomic.Int64 and which is otherwise unchanged; -modfile points the build at it. A
# race anywhere else, ours above all, fails the tests. Users' builds are unchanged.
RACE_DIR ?= $(or $(TMPDIR),/tmp)/gocurator-race
test: deps
	@mod=$$($(GO) run ./internal/tools/raceoverlay go.mod $(RACE_DIR)) && \
	  echo "go test -race -modfile=$$mod -count=1 -timeout 30m ./..." && \
	  $(GO) test -race -modfile=$$mod -count=1 -timeout 30m ./...
	cd examples/gocron && $(GO) test -race -count=1 -timeout 10m ./...
	cd prometheus && $(GO) test -race -count=1 -timeout 10m ./...
	cd examples/metrics && $(GO) test -race -count=1 -timeout 10m ./...
	cd otel && $(GO) test -race -count=1 -timeout 10m ./...
	FUZZTIME=$(TEST_FUZZTIME) bash scripts/fuzz.sh

# make test-docker: the Docker backend (go test -tags zktest_docker, ZKTEST_BACKEND=docker), on the
# stand-in for the official zookeeper image that scripts/docker-image.sh builds or reuses: it
# installs docker.io and debootstrap and starts dockerd if they are missing, and fails, saying
# why, where dockerd cannot run. zktest's Docker tests and its server and ensemble fault tests,
# then the recipes' tests, each server in a container. ZKTEST_IMAGE=zookeeper:3.9 (or any image
# honouring the official image's environment) runs them on that image instead.
DOCKER_ZKTEST_RUN ?= ^(TestDocker.*|TestChooseBackend|TestStart|TestWithTickTime|TestStopRestartKeepsZnodesAndSessions|TestKillRestartKeepsZnodes|TestStartEnsemble|TestEnsembleKillLeader|TestEnsembleQuorumLoss|TestEnsembleProxyExpireSession|TestEnsembleProxyCutAfterNextCreate)$$
DOCKER_RECIPES_RUN ?= ^(TestMutex|TestSemaphore|TestRWLock|TestLeaderLatch|TestMultiLock)
test-docker: deps
	@img=$$(bash scripts/docker-image.sh) && \
	  mod=$$($(GO) run ./internal/tools/raceoverlay go.mod $(RACE_DIR)) && \
	  echo "ZKTEST_BACKEND=docker ZKTEST_IMAGE=$$img go test -race -tags zktest_docker -count=1 ./zktest/ ./recipes/ (selected tests)" && \
	  ZKTEST_BACKEND=docker ZKTEST_IMAGE=$$img $(GO) test -race -modfile=$$mod -tags zktest_docker -count=1 -timeout 20m -run '$(DOCKER_ZKTEST_RUN)' ./zktest/ && \
	  ZKTEST_BACKEND=docker ZKTEST_IMAGE=$$img $(GO) test -race -modfile=$$mod -tags zktest_docker -count=1 -timeout 20m -run '$(DOCKER_RECIPES_RUN)' ./recipes/

# make fuzz: every fuzz target (child-name sorting, the connect string, path validation, zklock's
# command line) for FUZZTIME each, one at a time; FUZZTIME=5m is the long run. A failing input is
# saved under the package's testdata/fuzz. make test runs each for a count of inputs
# (TEST_FUZZTIME, a few seconds' worth), which has no deadline for the fuzzing engine to race.
FUZZTIME ?= 10s
TEST_FUZZTIME ?= 50000x
fuzz: deps
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# make bench: gocurator and Apache Curator 5.4 (testdata/zkbench/ZkBench.java) in alternation, three
# rounds each, against one fresh ZooKeeper; a table of medians (see BENCHMARKS.md). BENCHFLAGS adds
# zkbench flags, e.g. BENCHFLAGS='-recipe write' or BENCHFLAGS='-server host:2181'.
bench: deps
	$(GO) run ./cmd/zkbench -compare -rounds 3 $(BENCHFLAGS)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	cd examples/gocron && $(GO) vet ./...
	cd prometheus && $(GO) vet ./...
	cd examples/metrics && $(GO) vet ./...
	cd otel && $(GO) vet ./...
