#!/usr/bin/env bash
# The project's one test command: installs what is missing, then checks formatting,
# lints, and runs every test (unit, integration, doc). Fails at the first failure.
# Under CI=true a missing /dev/fuse is an error instead of a skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CI # tests read it; stays unset when unset
source scripts/setup.sh
setup_packages
setup_rust
setup_fuse

log=$(mktemp)
trap 'rm -f "$log"' EXIT
step() { echo "==> $*" >&2; "$@"; }
step cargo fmt --check
step cargo clippy --all-targets --quiet -- -D warnings
# The packaging test (tests/it/ops/packaging.rs) packages the release build: build it
# here, before the tests run, rather than while they run.
step cargo build --release --locked --quiet
step cargo test --all-targets 2>&1 | tee "$log"
step cargo test --doc 2>&1 | tee -a "$log"
# One closing line over every test binary ("N passed, N failed, N skipped").
awk '/^test result:/ { p += $4; f += $6; s += $8 }
     END { printf "all tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
