#!/usr/bin/env bash
# Demo on built-in samples: installs what is missing, builds a release binary, then
# digests like fsverity-utils, signs and enables sample files, mounts them, reads them,
# signs and enables one through the mount with the stock fsverity tool, flips a byte in
# the backing store and shows the read failing with EIO, and unmounts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
setup_packages fuse3 fsverity e2fsprogs openssl
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

section "an RSA key and a self-signed certificate, as for the kernel's .fs-verity keyring"
show openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -out cert.pem -days 365 \
  -subj /CN=fsverity-fuse-demo 2>openssl.log || { cat openssl.log >&2; exit 1; }

section "mount, trusting only that key and that certificate"
fsverity-fuse mount --require-signatures --trusted-key pub.pem --trusted-key cert.pem \
  backing mnt 2>daemon.log &
for _ in $(seq 100); do mountpoint -q mnt && break; sleep 0.05; done
grep " $work/mnt " /proc/mounts
show cat mnt/hello.txt
show fsverity measure mnt/hello.txt                   # the stock tool, through the mount
show lsattr mnt/hello.txt                             # 'V': the verity flag
echo "\$ echo more >> mnt/hello.txt"; echo more >>mnt/hello.txt || true

section "the stock tools sign and enable verity through the mount too"
echo "signed with the stock tools" >mnt/new.txt      # a new file, written through the mount
show fsverity sign mnt/new.txt new.p7s --key rsa.key --cert cert.pem   # the kernel's PKCS#7
show fsverity enable mnt/new.txt --signature=new.p7s  # FS_IOC_ENABLE_VERITY, checked
show fsverity measure mnt/new.txt                     # FS_IOC_MEASURE_VERITY, through the mount
show fsverity digest backing/new.txt                  # computed in userspace: the same digest
m=$(fsverity measure mnt/new.txt | cut -d' ' -f1); d=$(fsverity digest backing/new.txt | cut -d' ' -f1)
[[ $m == "$d" ]] || { echo "MISMATCH: measure $m, digest $d" >&2; exit 1; }
show cat mnt/new.txt
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
