#!/usr/bin/env bash
# Mount benchmark: the same data read raw, through bindfs (an unverified FUSE passthrough)
# and through fsverity-fuse with verity enabled, peers alternating in every round, on two
# backings in one run: the disk (ext4, what users have) and tmpfs (no I/O wait: verification
# fully exposed). Prints the machine, medians and ratios as markdown. Needs root.
# Usage: scripts/bench.sh [ROUNDS]   (default 5; BENCH_DIR: data dir; BENCH_FIO_SECONDS: 10)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-5} fio_seconds=${BENCH_FIO_SECONDS:-10}
source scripts/setup.sh
setup_packages fuse3 bindfs fio fsverity attr jq bc python3
setup_rust
setup_fuse
cargo build --release --quiet
ffs=$(realpath "${CARGO_TARGET_DIR:-target}/release/fsverity-fuse")
dir=$(realpath -m "${BENCH_DIR:-${CARGO_TARGET_DIR:-target}/bench/mount}")
source scripts/bench-lib.sh
data=$dir/backing tmpfs_dir=$dir/tmpfs
mkdir -p "$data/.fsverity-fuse" "$tmpfs_dir"
trap unmount_all EXIT

# --- data, made once on disk: 1 GiB file, 20,000 files of 1-64 KiB, a 100,000-entry tree ----
if [[ ! -e $data/.complete ]]; then
  echo "creating benchmark data in $data" >&2
  head -c 1G /dev/urandom >"$data/big"
  small_files "$data" 20000
  python3 - "$data" <<'EOF'
import os, sys
root = sys.argv[1]
for i in range(400):
    d = f"{root}/meta/d{i:03d}"; os.makedirs(d, exist_ok=True)
    for j in range(249): open(f"{d}/e{j}", "w").close()
EOF
  find "$data/small" -type f -print0 | xargs -0 "$ffs" enable >/dev/null
  touch "$data/.complete"
fi

# --- e. enable (tree build) throughput against fsverity digest ------------------------------
trees=$dir/enable-trees # big's tree goes here, so each round starts without it
for ((r = 0; r < rounds; r++)); do
  setfattr -x user.fsverity-fuse "$data/big" 2>/dev/null || true
  rm -rf "$trees"; cat "$data/big" >/dev/null
  timed enable:fsverity-utils fsverity digest "$data/big"
  timed enable:fsverity-fuse "$ffs" enable --tree-dir "$trees" "$data/big"
done
cp -r "$trees"/. "$data/.fsverity-fuse/"

# --- the tmpfs copy: the big file and the small files, enabled there -------------------------
mount -t tmpfs -o size=3G tmpfs "$tmpfs_dir"
mkdir -p "$tmpfs_dir/.fsverity-fuse"
cp "$data/big" "$tmpfs_dir/big" && cp -r "$data/small" "$tmpfs_dir/small"
{ echo "$tmpfs_dir/big"; find "$tmpfs_dir/small" -type f; } | xargs "$ffs" enable >/dev/null

mount_peers disk "$data"
mount_peers tmpfs "$tmpfs_dir"
echo "## scripts/bench.sh $rounds rounds ($(date -u +%F))"; echo; machine
for ((r = 0; r < rounds; r++)); do
  for p in raw bindfs fsverity-fuse; do
    m=${root[disk:$p]} t=${root[tmpfs:$p]}
    drop; timed "seq-dd:$p" dd if="$m/big" of=/dev/null bs=1M
    timed "warm-dd:$p" dd if="$m/big" of=/dev/null bs=1M
    drop; timed "seq-cat:$p" cat "$m/big"
    drop; fio_rand rand "$p" "$m/big"
    drop; timed "small-files:$p" sh -c "find '$m/small' -type f -exec cat {} + >/dev/null"
    drop; timed "metadata:$p" sh -c "find '$m/meta' -ls >/dev/null"
    # tmpfs: drop_caches empties the FUSE mounts' page cache, not tmpfs itself.
    drop; timed "tmpfs-dd:$p" dd if="$t/big" of=/dev/null bs=1M
    drop; timed "tmpfs-cat:$p" cat "$t/big"
    drop; fio_rand tmpfs-rand "$p" "$t/big"
    drop; timed "tmpfs-small:$p" sh -c "find '$t/small' -type f -exec cat {} + >/dev/null"
  done
done

# --- f. daemon CPU per verified GiB and peak RSS (tmpfs backing: the daemon's own work) ------
# Against the same SHA-256 code hashing that GiB alone (`digest --threads 1`, with its reads),
# and against fsverity-utils' `fsverity digest` (OpenSSL).
d=${daemons[tmpfs]} TIMEFORMAT='%3U+%3S'
drop; c0=$(daemon_cpu "$d"); dd if="${root[tmpfs:fsverity-fuse]}/big" of=/dev/null bs=1M 2>/dev/null
c1=$(daemon_cpu "$d")
sha_cpu=$( { time "$ffs" digest --threads 1 "$tmpfs_dir/big" >/dev/null; } 2>&1 | bc)
utils_cpu=$( { time fsverity digest "$tmpfs_dir/big" >/dev/null; } 2>&1 | bc)
cpu=$(bc -l <<<"($c1 - $c0) / $(getconf CLK_TCK)")
hwm=$(( $(awk '/VmHWM/ {print $2}' "/proc/${daemons[disk]}/status") / 1024 ))
hwm_tmpfs=$(( $(awk '/VmHWM/ {print $2}' "/proc/$d/status") / 1024 ))
echo "- raw read speed, 1 GiB cold: disk $(mbps seq-dd:raw) MB/s (dd bs=1M), $(mbps seq-cat:raw) MB/s (cat);" \
  "tmpfs $(mbps tmpfs-dd:raw) MB/s (dd bs=1M), $(mbps tmpfs-cat:raw) MB/s (cat)"

echo; echo "| metric | fsverity-fuse | peer | ratio | target | |"; echo "|---|---|---|---|---|---|"
row "tmpfs: sequential 1 GiB, dd bs=1M" tmpfs-dd us no ">= 0.8x bindfs" 0.8 bindfs
row "tmpfs: sequential 1 GiB, cat" tmpfs-cat us no ">= 0.8x bindfs" 0.8 bindfs
row "tmpfs: sequential 1 GiB, dd bs=1M" tmpfs-dd us no "(reported)" 0 raw
row "tmpfs: random 4 KiB reads, IOPS" tmpfs-rand-iops IOPS yes "(reported)" 0 bindfs
row "tmpfs: 20,000 files of 1-64 KiB" tmpfs-small us no "(reported)" 0 bindfs
row "disk: sequential 1 GiB cold, dd bs=1M" seq-dd us no ">= 1.0x bindfs" 1.0 bindfs
row "disk: sequential 1 GiB cold, cat" seq-cat us no ">= 1.0x bindfs" 1.0 bindfs
row "disk: sequential 1 GiB cold, dd bs=1M" seq-dd us no "(reported)" 0 raw
row "disk: sequential 1 GiB warm, dd bs=1M" warm-dd us no ">= 2x bindfs" 2.0 bindfs
row "disk: random 4 KiB reads, IOPS" rand-iops IOPS yes ">= 0.9x bindfs" 0.9 bindfs
row "disk: random 4 KiB reads, p99" rand-p99-us us no "(reported)" 0 bindfs
row "disk: 20,000 files of 1-64 KiB, cold" small-files us no ">= 1.0x bindfs" 1.0 bindfs
row "disk: find -ls, 100,000 entries" metadata us no ">= 1.0x bindfs" 1.0 bindfs
row "enable 1 GiB vs fsverity digest" enable us no ">= 2x" 2.0 fsverity-utils
printf '| daemon CPU per verified GiB | %.2f s | same SHA-256 code alone %.2f s | %.2fx | <= 1.2x | %s |\n' \
  "$cpu" "$sha_cpu" "$(bc -l <<<"$cpu / $sha_cpu")" "$( (($(bc -l <<<"$cpu <= 1.2 * $sha_cpu"))) && echo met || echo MISSED)"
printf '| daemon CPU per verified GiB | %.2f s | fsverity digest (OpenSSL) %.2f s | %.2fx | (reported) | |\n' \
  "$cpu" "$utils_cpu" "$(bc -l <<<"$cpu / $utils_cpu")"
printf '| daemon peak RSS (disk, tmpfs) | %d, %d MiB | cache budget 64 MiB + 64 | | <= 128 MiB | %s |\n' \
  "$hwm" "$hwm_tmpfs" "$( ((hwm <= 128 && hwm_tmpfs <= 128)) && echo met || echo MISSED)"
echo; echo "daemon counters (disk): $(counters "${root[disk:fsverity-fuse]}")"
echo "daemon counters (tmpfs): $(counters "${root[tmpfs:fsverity-fuse]}")"
echo; echo "raw medians (us, IOPS):"; for k in "${!res[@]}"; do echo "  $k: $(median "$k")"; done | sort
