#!/usr/bin/env bash
# Image benchmark: one tree (default /usr/include) served three ways, in one run,
# alternating: the kernel's composefs mount of an image (EROFS + overlay, no verity:
# the kernel here has none), fsverity-fuse serving the same image (verified), and
# fsverity-fuse serving a verity-enabled copy of the tree as a directory. Cold
# `find -ls` and cold reads of every file; medians and ratios as markdown. Root.
# Usage: scripts/bench-image.sh [ROUNDS] [SRC]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-3} src=$(realpath "${2:-/usr/include}")
source scripts/setup.sh
setup_packages fuse3 erofs-utils util-linux python3
setup_rust
setup_fuse
cargo build --release --quiet
ffs=$(realpath "${CARGO_TARGET_DIR:-target}/release/fsverity-fuse")
dir=$(realpath -m "${BENCH_DIR:-${CARGO_TARGET_DIR:-target}/bench/image}")
mkdir -p "$dir"/{lower,kernel,image,tree}
cleanup() {
  for m in "$dir/kernel" "$dir/lower" "$dir/image" "$dir/tree"; do
    mountpoint -q "$m" && { umount "$m" || umount -l "$m"; }
  done
  wait
}
trap cleanup EXIT

if [[ ! -e $dir/.complete ]]; then
  echo "building the image and the verity copy of $src in $dir" >&2
  rm -rf "$dir"/{objects,app.img,backing}
  "$ffs" mkimage "$src" "$dir/app.img" --objects "$dir/objects" >"$dir/digest"
  cp -a "$src" "$dir/backing"
  mkdir -p "$dir/backing/.fsverity-fuse"
  find "$dir/backing" -path "$dir/backing/.fsverity-fuse" -prune -o -type f -size +0 -print0 |
    xargs -0 "$ffs" enable >/dev/null
  touch "$dir/.complete"
fi
digest=$(cut -d' ' -f1 "$dir/digest")

mount -t erofs -o loop,ro "$dir/app.img" "$dir/lower"
mount -t overlay composefs -o "ro,metacopy=on,redirect_dir=on,lowerdir=$dir/lower::$dir/objects" "$dir/kernel"
"$ffs" mount "$dir/app.img" "$dir/image" --objects "$dir/objects" --digest "$digest" &
"$ffs" mount "$dir/backing" "$dir/tree" --ro &
for m in image tree; do
  for _ in $(seq 100); do mountpoint -q "$dir/$m" && break; sleep 0.1; done
done

now() { echo "${EPOCHREALTIME/./}"; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
declare -A t
for r in $(seq "$rounds"); do
  for m in kernel image tree; do
    drop; s=$(now); find "$dir/$m" -ls >/dev/null; t[$m,find]+="$(( $(now) - s )) "
    drop; s=$(now); find "$dir/$m" -type f -exec cat {} + >/dev/null; t[$m,read]+="$(( $(now) - s )) "
    s=$(now); find "$dir/$m" -ls >/dev/null; t[$m,warm]+="$(( $(now) - s )) "
  done
  echo "round $r done" >&2
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
files=$(find "$src" -type f | wc -l)
echo "| workload ($files files of $src, $rounds rounds, medians) | kernel composefs (unverified) | fsverity-fuse image (verified) | fsverity-fuse directory (verified) | image / kernel | image / directory |"
echo "|---|---|---|---|---|---|"
for w in find read warm; do
  k=$(echo "${t[kernel,$w]}" | median) i=$(echo "${t[image,$w]}" | median) d=$(echo "${t[tree,$w]}" | median)
  printf '| %s | %d ms | %d ms | %d ms | %.2fx | %.2fx |\n' "$w" $((k / 1000)) $((i / 1000)) $((d / 1000)) \
    "$(bc -l <<<"$k / $i")" "$(bc -l <<<"$d / $i")"
done
echo "(ratios: higher is faster for fsverity-fuse's image mount; cold = caches dropped; 'find' is find -ls, 'read' reads every file, 'warm' is find -ls again)"
