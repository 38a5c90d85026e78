#!/usr/bin/env bash
# Runs every Go fuzz target of the module for a bounded time each, one at a time (go test -fuzz takes
# one target per run).
#
#   FUZZTIME=10s      how long each target runs (go test -fuzztime: a duration, or Nx for N inputs)
#   FUZZPARALLEL=1    fuzzing workers per target (go test -parallel)
#   GO=go             the go command
#   scripts/fuzz.sh [PACKAGE...]   only these packages (default: every package of the module)
#
# The targets are found with `go test -list '^Fuzz'`. A target that finds a failing input writes it
# under its package's testdata/fuzz/<FuzzName>/ (go test's own behaviour) and the script goes on with
# the others; it exits 1 if any target failed, naming them. The packages' tests start a ZooKeeper
# server in TestMain, as for go test.
set -euo pipefail

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
FUZZPARALLEL=${FUZZPARALLEL:-1}

cd "$(dirname "$0")/.."

if [ $# -gt 0 ]; then
	pkgs=("$@")
else
	mapfile -t pkgs < <("$GO" list ./...)
fi

failed=()
total=0
for pkg in "${pkgs[@]}"; do
	# Only packages with a *_test.go that defines a fuzz target are worth building a test binary for.
	dir=$("$GO" list -f '{{.Dir}}' "$pkg")
	if ! grep -qsE '^func Fuzz[A-Za-z0-9_]*\(' "$dir"/*_test.go; then
		continue
	fi
	# -list prints the matching names, then "ok <pkg> <time>"; keep the names.
	mapfile -t targets < <("$GO" test -list '^Fuzz' "$pkg" | grep -E '^Fuzz[A-Za-z0-9_]*$' || true)
	for target in "${targets[@]}"; do
		total=$((total + 1))
		echo "=== $pkg $target (fuzztime $FUZZTIME)"
		log=$(mktemp)
		if ! "$GO" test -run "^${target}\$" -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -parallel "$FUZZPARALLEL" "$pkg" 2>&1 | tee "$log"; then
			# Go 1.26's fuzzing coordinator can end a duration-bounded run with a bare "context
			# deadline exceeded" and no input (go.dev/issue/75804, fixed in Go 1.27). A real finding
			# always writes its input; only that, or any other failure, counts.
			if grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:' "$log" &&
				[ "$(grep -c '_test.go:[0-9]' "$log")" -eq 0 ]; then
				echo "fuzz.sh: $pkg $target stopped on the fuzzing engine's deadline race, no input found"
			else
				failed+=("$pkg $target")
			fi
		fi
		rm -f "$log"
	done
done

if [ "$total" -eq 0 ]; then
	echo "fuzz.sh: no fuzz targets found" >&2
	exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz.sh: ${#failed[@]} of $total targets failed:" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz.sh: $total targets ran for $FUZZTIME each, no failure"
