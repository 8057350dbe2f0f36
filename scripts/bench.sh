#!/usr/bin/env bash
# Mount benchmark: the same data read raw, through bindfs (an unverified FUSE passthrough)
# and through fsverity-fuse with verity enabled, in one run, peers alternating in every
# round; prints medians and ratios as markdown. Needs root (drop_caches, mounts).
# Usage: scripts/bench.sh [ROUNDS]          (default 5; BENCH_DIR overrides the data dir)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-5}
source scripts/setup.sh
setup_packages fuse3 bindfs fio fsverity attr jq bc python3
setup_rust
setup_fuse
cargo build --release --quiet
ffs=$(realpath "${CARGO_TARGET_DIR:-target}/release/fsverity-fuse")
dir=$(realpath -m "${BENCH_DIR:-${CARGO_TARGET_DIR:-target}/bench/mount}")
data=$dir/backing mb=$dir/bindfs mf=$dir/verity
mkdir -p "$data/.fsverity-fuse" "$mb" "$mf"
cleanup() { for m in "$mb" "$mf"; do mountpoint -q "$m" && { umount "$m" || umount -l "$m"; }; done; wait; }
trap cleanup EXIT

# --- data, made once: 1 GiB file, 20,000 files of 1-64 KiB, a 100,000-entry tree -----------
if [[ ! -e $data/.complete ]]; then
  echo "creating benchmark data in $data" >&2
  head -c 1G /dev/urandom >"$data/big"
  python3 - "$data" <<'EOF'
import os, random, sys
root = sys.argv[1]; rnd = random.Random(42)
for i in range(20000):
    d = f"{root}/small/{i // 500:02d}"; os.makedirs(d, exist_ok=True)
    open(f"{d}/f{i}", "wb").write(rnd.randbytes(rnd.randint(1024, 65536)))
for i in range(400):
    d = f"{root}/meta/d{i:03d}"; os.makedirs(d, exist_ok=True)
    for j in range(249): open(f"{d}/e{j}", "w").close()
EOF
  find "$data/small" -type f -print0 | xargs -0 "$ffs" enable >/dev/null
  touch "$data/.complete"
fi

now() { echo "${EPOCHREALTIME/./}"; }               # microseconds
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
declare -A res
record() { res[$1]+="$2 "; }
median() { tr ' ' '\n' <<<"${res[$1]}" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timed() { local key=$1 t0; shift; t0=$(now); "$@" >/dev/null; record "$key" $(($(now) - t0)); }
daemon_cpu() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }

# --- e. enable (tree build) throughput against fsverity digest ------------------------------
trees=$dir/enable-trees # big's tree goes here, so each round starts without it
for ((r = 0; r < rounds; r++)); do
  setfattr -x user.fsverity-fuse "$data/big" 2>/dev/null || true
  rm -rf "$trees"; cat "$data/big" >/dev/null
  timed enable:fsverity-utils fsverity digest "$data/big"
  timed enable:fsverity-fuse "$ffs" enable --tree-dir "$trees" "$data/big"
done
cp -r "$trees"/. "$data/.fsverity-fuse/"

bindfs "$data" "$mb"
"$ffs" mount --cache-size 64M "$data" "$mf" 2>"$dir/daemon.log" &
daemon=$!
for _ in $(seq 200); do mountpoint -q "$mf" && break; sleep 0.05; done
mountpoint -q "$mf" || { cat "$dir/daemon.log"; exit 1; }
declare -A root=([raw]=$data [bindfs]=$mb [fsverity-fuse]=$mf)
peers=(raw bindfs fsverity-fuse)

for ((r = 0; r < rounds; r++)); do
  for p in "${peers[@]}"; do
    m=${root[$p]}
    drop; timed "seq-cold:$p" dd if="$m/big" of=/dev/null bs=1M
    timed "seq-warm:$p" dd if="$m/big" of=/dev/null bs=1M
    drop
    out=$(fio --name=rand --filename="$m/big" --rw=randread --bs=4k --ioengine=psync --size=1G \
      --runtime=10 --time_based --invalidate=1 --output-format=json)
    record "rand-iops:$p" "$(jq '.jobs[0].read.iops | floor' <<<"$out")"
    record "rand-p99-us:$p" "$(jq '.jobs[0].read.clat_ns.percentile["99.000000"] / 1000 | floor' <<<"$out")"
    drop; timed "small-files:$p" sh -c "find '$m/small' -type f -exec cat {} + >/dev/null"
    drop; timed "metadata:$p" sh -c "find '$m/meta' -ls >/dev/null"
  done
done

# --- f. daemon CPU per verified GiB and peak RSS, against SHA-256 of that GiB alone ----------
# Backing file in the page cache, the mount's cache dropped: the daemon's own work, compared
# with hashing the same warm file (the disk's cost is in neither).
drop; cat "$data/big" >/dev/null
c0=$(daemon_cpu); dd if="$mf/big" of=/dev/null bs=1M 2>/dev/null; c1=$(daemon_cpu)
cat "$data/big" >/dev/null; TIMEFORMAT='%3U+%3S'
sha_cpu=$( { time "$ffs" digest --threads 1 "$data/big" >/dev/null; } 2>&1 | bc)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status")

cmp_rows() { # label key unit higher-is-better target-text target-ratio peer
  local b a
  b=$(median "$2:$7"); a=$(median "$2:fsverity-fuse")
  local ratio; if [[ $4 == yes ]]; then ratio=$(bc -l <<<"$a / $b"); else ratio=$(bc -l <<<"$b / $a"); fi
  printf '| %s | %s %s | %s %s (%s) | %.2fx | %s | %s |\n' "$1" "$a" "$3" "$b" "$3" "$7" "$ratio" "$5" \
    "$( (($(bc -l <<<"$ratio >= $6"))) && echo met || echo MISSED)"
}
echo "## scripts/bench.sh $rounds rounds ($(date -u +%F), $(nproc) cores, $(uname -r))"
echo; echo "| metric | fsverity-fuse | peer | ratio | target | |"; echo "|---|---|---|---|---|---|"
cmp_rows "a. sequential 1 GiB, cold" seq-cold us no ">= 1.0x bindfs" 1.0 bindfs
cmp_rows "a. sequential 1 GiB, cold" seq-cold us no ">= 0.5x raw" 0.5 raw
cmp_rows "a. sequential 1 GiB, warm" seq-warm us no ">= 0.9x raw" 0.9 raw
cmp_rows "b. random 4 KiB reads, IOPS" rand-iops IOPS yes ">= 0.9x bindfs" 0.9 bindfs
cmp_rows "b. random 4 KiB reads, p99" rand-p99-us us no "(reported)" 0 bindfs
cmp_rows "c. 20,000 files of 1-64 KiB" small-files us no ">= 0.9x bindfs" 0.9 bindfs
cmp_rows "d. find -ls, 100,000 entries" metadata us no ">= 1.0x bindfs" 1.0 bindfs
cmp_rows "e. enable 1 GiB vs fsverity digest" enable us no ">= 1.0x" 1.0 fsverity-utils
cpu=$(bc -l <<<"($c1 - $c0) / $(getconf CLK_TCK)")
printf '| f. daemon CPU per verified GiB | %.2f s | SHA-256 alone %.2f s | %.2fx | <= 1.3x | %s |\n' \
  "$cpu" "$sha_cpu" "$(bc -l <<<"$cpu / $sha_cpu")" "$( (($(bc -l <<<"$cpu <= 1.3 * $sha_cpu"))) && echo met || echo MISSED)"
printf '| f. daemon peak RSS | %d MiB | cache budget 64 MiB + 64 | | <= 128 MiB | %s |\n' \
  $((hwm / 1024)) "$( ((hwm <= 131072)) && echo met || echo MISSED)"
echo; echo "raw medians (us, IOPS):"; for k in "${!res[@]}"; do echo "  $k: $(median "$k")"; done | sort
