#!/usr/bin/env bash
# Demo on built-in samples: installs what is missing, builds a release binary, then
# digests like fsverity-utils, signs and enables sample files, mounts them, reads them,
# flips a byte in the backing store and shows the read failing with EIO, and unmounts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
setup_packages fuse3 fsverity e2fsprogs
setup_rust
setup_fuse
cargo build --release --quiet
PATH="$(realpath "${CARGO_TARGET_DIR:-target}/release"):$PATH"
work=$(mktemp -d)
cleanup() { mountpoint -q "$work/mnt" && { umount "$work/mnt" || umount -l "$work/mnt"; }; wait; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
section() { printf '\n== %s\n' "$*"; }
show() { echo "\$ $*"; "$@"; }

section "samples, and digests identical to fsverity-utils"
mkdir -p backing/.fsverity-fuse mnt
printf 'hello, fs-verity\n' >backing/hello.txt
seq 1 300000 >backing/numbers.txt                    # ~2 MiB: a two-level Merkle tree
echo "not protected" >backing/plain.txt
for f in hello.txt numbers.txt; do
  a=$(cd backing && fsverity-fuse digest "$f"); b=$(cd backing && fsverity digest "$f")
  [[ $a == "$b" ]] || { echo "MISMATCH: $a vs $b" >&2; exit 1; }
  echo "match  $a"
done

section "sign with a fresh Ed25519 key and enable verity on the backing files"
show fsverity-fuse keygen --private key.pem --public pub.pem
show fsverity-fuse enable --key key.pem backing/hello.txt backing/numbers.txt

section "mount, trusting only that key"
fsverity-fuse mount --require-signatures --trusted-key pub.pem backing mnt 2>daemon.log &
for _ in $(seq 100); do mountpoint -q mnt && break; sleep 0.05; done
grep " $work/mnt " /proc/mounts
show cat mnt/hello.txt
show fsverity measure mnt/hello.txt                   # the stock tool, through the mount
show lsattr mnt/hello.txt                             # 'V': the verity flag
echo "\$ echo more >> mnt/hello.txt"; echo more >>mnt/hello.txt || true

section "the stock tool enables verity through the mount too"
cp backing/plain.txt mnt/new.txt
show fsverity enable mnt/new.txt || true              # refused: unsigned, --require-signatures
show fsverity-fuse status mnt

section "tamper with the backing store: flip one byte in block 100 of numbers.txt"
printf 'X' | dd of=backing/numbers.txt bs=1 seek=$((100 * 4096 + 7)) conv=notrunc status=none
echo "\$ sha256sum mnt/numbers.txt"; sha256sum mnt/numbers.txt || true
show dd if=mnt/numbers.txt bs=4096 skip=99 count=1 status=none of=/dev/null   # block 99 is fine
echo "daemon log:"; grep -o 'FILE CORRUPTED.*' daemon.log | head -1 || true

section "unmount"
show umount mnt
wait
echo; echo "demo finished: verified reads, EIO on tampering, stock fs-verity tools through the mount"
