#!/usr/bin/env bash
# Demo on built-in samples: installs what is missing, builds a release binary, and shows
# `fsverity-fuse digest` agreeing with fsverity-utils' `fsverity digest`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
setup_packages fsverity
setup_rust
cargo build --release --quiet
PATH="$(realpath "${CARGO_TARGET_DIR:-target}/release"):$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
section() { printf '\n== %s\n' "$*"; }
show() { echo "\$ $*"; "$@"; }

make_samples() {
  section "samples (allocated KiB, then apparent size)"
  printf 'hello, fs-verity\n' >hello.txt                      # one partial block
  : >empty                                                    # root hash is all zeros
  seq 1 300000 >multi-block.txt                               # ~2 MiB: a two-level tree
  truncate -s 64M sparse.img                                  # a hole with one byte of data
  printf 'x' | dd of=sparse.img bs=1 seek=40000000 conv=notrunc status=none
  ls -ls --block-size=K
}

demo_digest() {
  section "digests: fsverity-fuse vs fsverity-utils"
  local f a b
  for f in hello.txt empty multi-block.txt sparse.img; do
    a=$(fsverity-fuse digest "$f")
    b=$(fsverity digest "$f")
    [[ $a == "$b" ]] || { echo "MISMATCH: $a vs $b" >&2; exit 1; }
    echo "match  $a"
  done
  section "the same Merkle tree and descriptor, byte for byte"
  fsverity-fuse digest multi-block.txt --out-merkle-tree=ours.tree --out-descriptor=ours.desc >/dev/null
  fsverity digest multi-block.txt --out-merkle-tree=ref.tree --out-descriptor=ref.desc >/dev/null
  cmp ours.tree ref.tree && cmp ours.desc ref.desc && ls -l ours.tree ours.desc
  section "formatted digest that built-in signatures sign (\"FSVerity\" + alg + size + digest)"
  show fsverity-fuse digest --for-builtin-sig hello.txt
  show fsverity digest --for-builtin-sig hello.txt
  section "other parameters (BLAKE3 is an fsverity-fuse extension the kernel rejects)"
  show fsverity-fuse digest --hash-alg=sha512 --block-size=1024 --salt=c0ffee multi-block.txt
  show fsverity digest --hash-alg=sha512 --block-size=1024 --salt=c0ffee multi-block.txt
  show fsverity-fuse digest --hash-alg=blake3 --threads=0 multi-block.txt
}

make_samples
demo_digest
section "demo finished: every digest matched fsverity-utils"
