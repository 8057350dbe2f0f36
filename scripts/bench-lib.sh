#!/usr/bin/env bash
# Helpers of scripts/bench.sh (sourced): timing and medians, the machine's description,
# mounting the peers, and the markdown rows. Expects $ffs (the release binary) and $dir.

now() { echo "${EPOCHREALTIME/[.,]/}"; } # microseconds
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
declare -A res
record() { res[$1]+="$2 "; }
median() { tr ' ' '\n' <<<"${res[$1]:-}" | { grep . || true; } | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timed() { local key=$1 t0; shift; t0=$(now); "$@" >/dev/null 2>&1; record "$key" $(($(now) - t0)); }

# small_files DIR COUNT: COUNT files of 1-64 KiB of random bytes under DIR/small, 500 per
# directory, the same for every run (seeded).
small_files() {
  python3 - "$1" "$2" <<'EOF'
import os, random, sys
root, count = sys.argv[1], int(sys.argv[2]); rnd = random.Random(42)
for i in range(count):
    d = f"{root}/small/{i // 500:02d}"; os.makedirs(d, exist_ok=True)
    open(f"{d}/f{i}", "wb").write(rnd.randbytes(rnd.randint(1024, 65536)))
EOF
}

# The machine, as docs/BENCHMARKS.md records it.
machine() {
  local flags; flags=$(grep -m1 '^flags' /proc/cpuinfo)
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" \
    "(family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs)," \
    "model $(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | xargs)), $(nproc) cores"
  echo -n "- hash instructions:"
  for f in sha_ni avx2 avx512f avx512bw; do [[ $flags == *" $f"* ]] && echo -n " $f"; done; echo
  echo "- kernel $(uname -r), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# mount_peers NAME BACKING: bindfs at $dir/NAME-bindfs and fsverity-fuse at $dir/NAME-verity
# (its pid in daemons[NAME]); sets root[NAME:raw|bindfs|fsverity-fuse].
declare -A root daemons
mount_peers() {
  local name=$1 backing=$2 mb=$dir/$1-bindfs mf=$dir/$1-verity
  mkdir -p "$mb" "$mf"
  bindfs "$backing" "$mb"
  "$ffs" mount --cache-size 64M "$backing" "$mf" 2>"$dir/$name-daemon.log" &
  daemons[$name]=$!
  for _ in $(seq 200); do mountpoint -q "$mf" && break; sleep 0.05; done
  mountpoint -q "$mf" || { cat "$dir/$name-daemon.log"; exit 1; }
  root[$name:raw]=$backing root[$name:bindfs]=$mb root[$name:fsverity-fuse]=$mf
  mounted+=("$mb" "$mf")
}
mounted=()
unmount_all() {
  local m; for m in "${mounted[@]}"; do mountpoint -q "$m" && { umount "$m" || umount -l "$m"; }; done
  [[ -n ${tmpfs_dir:-} ]] && mountpoint -q "$tmpfs_dir" && umount "$tmpfs_dir"
  wait
}

daemon_cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # clock ticks, user + system
counters() { getfattr --only-values -n user.fsverity-fuse.status "$1" 2>/dev/null | jq -c .counters; }

# fio_rand KEY PEER FILE: random 4 KiB psync reads for $fio_seconds: KEY-iops:PEER, KEY-p99-us:PEER.
fio_rand() {
  local out
  out=$(fio --name=rand --filename="$3" --rw=randread --bs=4k --ioengine=psync --size=1G \
    --runtime="$fio_seconds" --time_based --invalidate=1 --output-format=json)
  record "$1-iops:$2" "$(jq '.jobs[0].read.iops | floor' <<<"$out")"
  record "$1-p99-us:$2" "$(jq '.jobs[0].read.clat_ns.percentile["99.000000"] / 1000 | floor' <<<"$out")"
}

# row LABEL KEY UNIT HIGHER_IS_BETTER TARGET_TEXT TARGET_RATIO PEER: fsverity-fuse against PEER.
row() {
  local b a ratio verdict
  b=$(median "$2:$7") a=$(median "$2:fsverity-fuse")
  [[ -n $a && -n $b ]] || { echo "| $1 | (not measured) | | | $5 | |"; return; }
  if [[ $4 == yes ]]; then ratio=$(bc -l <<<"$a / $b"); else ratio=$(bc -l <<<"$b / $a"); fi
  verdict=$( (($(bc -l <<<"$ratio >= $6"))) && echo met || echo MISSED)
  [[ $6 == 0 ]] && verdict=""
  printf '| %s | %s %s | %s %s (%s) | %.2fx | %s | %s |\n' "$1" "$a" "$3" "$b" "$3" "$7" "$ratio" "$5" "$verdict"
}

# mbps KEY: MB/s of a 1 GiB read from its median time.
mbps() { local t; t=$(median "$1"); [[ -n $t ]] && echo $((1073741824 / t)); }
