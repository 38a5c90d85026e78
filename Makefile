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

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 200x ./recipes/

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	cd examples/gocron && $(GO) vet ./...
