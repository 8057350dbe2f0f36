#!/usr/bin/env bash
# Warm-cache hashing benchmark: `fsverity digest` (fsverity-utils) vs `fsverity-fuse digest`
# on one 1 GiB random file kept in the page cache (created once, reused). Commands alternate
# within each round; prints a markdown table of medians and ratios.
# Usage: scripts/bench-digest.sh [ROUNDS]   (default 5; BENCH_FILE overrides the data file)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-5}
source scripts/setup.sh
setup_packages fsverity
setup_rust
cargo build --release --quiet
PATH="$(realpath "${CARGO_TARGET_DIR:-target}/release"):$PATH"
file=${BENCH_FILE:-${CARGO_TARGET_DIR:-target}/bench/random-1GiB}
if [[ $(stat -c %s "$file" 2>/dev/null) != 1073741824 ]]; then
  mkdir -p "$(dirname "$file")"
  head -c 1G /dev/urandom >"$file.tmp" && mv "$file.tmp" "$file"
fi
cat "$file" >/dev/null # warm the page cache: this measures hashing, not the disk

labels=("fsverity-utils sha256" "ours sha256 --threads 1" "ours sha256 all cores"
  "ours blake3 --threads 1" "ours blake3 all cores")
run() {
  case $1 in
    0) fsverity digest "$file" ;;
    1) fsverity-fuse digest --threads 1 "$file" ;;
    2) fsverity-fuse digest --threads 0 "$file" ;;
    3) fsverity-fuse digest --hash-alg blake3 --threads 1 "$file" ;;
    4) fsverity-fuse digest --hash-alg blake3 --threads 0 "$file" ;;
  esac
}
[[ $(run 0) == "$(run 1)" && $(run 1) == "$(run 2)" && $(run 3) == "$(run 4)" ]] ||
  { echo "bench: digests disagree" >&2; exit 1; }
samples=$(mktemp)
trap 'rm -f "$samples"' EXIT
for ((r = 0; r < rounds; r++)); do
  for i in "${!labels[@]}"; do # microseconds, from bash's clock (no fork in the timing)
    t0=${EPOCHREALTIME/[.,]/}; run "$i" >/dev/null; t1=${EPOCHREALTIME/[.,]/}
    echo "$i $((t1 - t0))" >>"$samples"
  done
done
for i in "${!labels[@]}"; do
  m[i]=$(awk -v i="$i" '$1 == i {print $2 / 1e6}' "$samples" | sort -g |
    awk '{v[NR] = $1} END {print (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2}')
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }
target() { # NAME BASELINE CANDIDATE MIN_SPEEDUP
  awk -v n="$1" -v a="$2" -v b="$3" -v w="$4" \
    'BEGIN {printf "| %s | %.2fx | %s |\n", n, a / b, (a / b >= w ? "yes" : "**no**")}'
}

echo "$(nproc) cores, $rounds rounds, medians of wall time over 1 GiB (warm page cache)"
echo; echo "| command | median (s) | GiB/s | speed vs fsverity-utils |"; echo "|---|---|---|---|"
for i in "${!labels[@]}"; do
  echo "| ${labels[i]} | $(printf %.3f "${m[i]}") | $(ratio 1 "${m[i]}" | tr -d x) | $(ratio "${m[0]}" "${m[i]}") |"
done
echo; echo "| target | ratio | met |"; echo "|---|---|---|"
target "SHA-256, 1 thread >= 1.0x fsverity-utils" "${m[0]}" "${m[1]}" 1.0
target "SHA-256, all cores >= 1.7x fsverity-utils" "${m[0]}" "${m[2]}" 1.7
target "BLAKE3 >= 2x our SHA-256, 1 thread" "${m[1]}" "${m[3]}" 2
target "BLAKE3 >= 2x our SHA-256, all cores" "${m[2]}" "${m[4]}" 2
