#!/usr/bin/env bash
# Spike (issue 14): what would FUSE over io_uring gain on this machine? fuser has no io_uring
# transport, so this measures the transport alone with libfuse's own passthrough_hp example,
# built from Debian's libfuse 3.18 source (the first with io_uring), mounted twice over the same
# tmpfs data: once with the classic /dev/fuse read/write loop, once with `-o io_uring`
# (kernel: /sys/module/fuse/parameters/enable_uring=Y). Both without FUSE passthrough and
# without splice, as fsverity-fuse runs. Peers alternate in every round; medians as markdown.
# Usage: scripts/bench-io-uring.sh [ROUNDS]   (root; BENCH_DIR: work dir)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-5}
source scripts/setup.sh
setup_packages fuse3 fio jq bc curl xz-utils meson ninja-build pkg-config gcc g++ liburing-dev libnuma-dev
setup_fuse
dir=$(realpath -m "${BENCH_DIR:-${CARGO_TARGET_DIR:-target}/bench/io-uring}")
mkdir -p "$dir"
source scripts/bench-lib.sh

# --- libfuse 3.18.3 from Debian, checked against the checksum Debian's Sources index lists ---
version=3.18.3
sha=bcd19582c5e30f7fe45dd86a5540e998590aa01903afc7ebcbeea6c8ac5421ee
src=$dir/fuse-$version hp=$dir/fuse-$version/build/example/passthrough_hp
if [[ ! -x $hp ]]; then
  tarball=$dir/fuse3_$version.orig.tar.gz
  curl -fsS -o "$tarball" "http://deb.debian.org/debian/pool/main/f/fuse3/fuse3_$version.orig.tar.gz"
  echo "$sha  $tarball" | sha256sum -c --quiet
  tar -C "$dir" -xzf "$tarball"
  (cd "$src" && meson setup build -Dexamples=true -Dutils=false -Dtests=false >/dev/null &&
    ninja -C build >/dev/null)
fi
export LD_LIBRARY_PATH=$src/build/lib

# --- data on tmpfs: a 1 GiB file and 10,000 files of 1-64 KiB ---------------------------------
# (passthrough_hp keeps a descriptor per inode it knows: 10,000 stays under common limits)
data=$dir/tmpfs
mkdir -p "$data" "$dir/classic" "$dir/uring"
mountpoint -q "$data" || mount -t tmpfs -o size=2G tmpfs "$data"
uring_param=/sys/module/fuse/parameters/enable_uring
uring_before=$(cat "$uring_param")
cleanup() {
  for m in "$dir/classic" "$dir/uring"; do mountpoint -q "$m" && { umount "$m" || umount -l "$m"; }; done
  mountpoint -q "$data" && umount "$data"
  echo "$uring_before" >"$uring_param"
}
trap cleanup EXIT
head -c 1G /dev/urandom >"$data/big"
small_files "$data" 10000

echo Y >"$uring_param"
ulimit -n "$(ulimit -Hn)"
"$hp" --nopassthrough --nosplice "$data" "$dir/classic"
"$hp" --nopassthrough --nosplice -o io_uring "$data" "$dir/uring"
for m in classic uring; do mountpoint -q "$dir/$m" || { echo "$m did not mount" >&2; exit 1; }; done

echo "## scripts/bench-io-uring.sh $rounds rounds ($(date -u +%F))"; echo; machine
echo "- libfuse $version passthrough_hp, --nopassthrough --nosplice, data on tmpfs"; echo
for ((r = 0; r < rounds; r++)); do
  for p in classic uring; do
    m=$dir/$p
    out=$(fio --name=rand --filename="$m/big" --rw=randread --bs=4k --ioengine=psync --direct=1 \
      --size=1G --runtime=10 --time_based --output-format=json)
    record "rand-iops:$p" "$(jq '.jobs[0].read.iops | floor' <<<"$out")"
    record "rand-lat-us:$p" "$(jq '.jobs[0].read.clat_ns.mean / 1000 | floor' <<<"$out")"
    drop; timed "small-files:$p" sh -c "find '$m/small' -type f -exec cat {} + >/dev/null"
    drop; timed "seq-dd:$p" dd if="$m/big" of=/dev/null bs=1M
  done
  echo "round $((r + 1)) done" >&2
done

echo "| workload (medians of $rounds rounds) | classic /dev/fuse | io_uring | io_uring gain |"
echo "|---|---|---|---|"
row() { # label key unit higher-is-better
  local c u; c=$(median "$2:classic") u=$(median "$2:uring")
  local gain; if [[ $4 == yes ]]; then gain=$(bc -l <<<"$u / $c"); else gain=$(bc -l <<<"$c / $u"); fi
  printf '| %s | %s %s | %s %s | %.2fx |\n' "$1" "$c" "$3" "$u" "$3" "$gain"
}
row "random 4 KiB reads, O_DIRECT, 1 job" rand-iops IOPS yes
row "random 4 KiB reads, mean latency" rand-lat-us us no
row "10,000 files of 1-64 KiB, cold" small-files us no
row "sequential 1 GiB, dd bs=1M, cold" seq-dd us no
