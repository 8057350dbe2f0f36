#!/usr/bin/env bash
# Builds the Debian package target/debian/fsverity-fuse_VERSION-1_ARCH.deb with cargo-deb
# (metadata: [package.metadata.deb] in Cargo.toml), installing cargo-deb first if missing.
# The man pages, shell completions and systemd units it ships are generated from the
# release binary into target/release/package/; nothing generated is committed.
#   scripts/package.sh [--no-build]    (--no-build: package target/release/fsverity-fuse as is)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
die() { echo "package: $*" >&2; exit 1; }
case ${1:-} in
  "") cargo build --release --locked ;;
  --no-build) ;;
  *) echo "package: unknown argument '$1' (try --no-build)" >&2; exit 2 ;;
esac
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked

release=${CARGO_TARGET_DIR:-target}/release
bin=$release/fsverity-fuse out=$release/package
[[ -x $bin ]] || die "$bin is missing: run without --no-build"
rm -rf "$out" && mkdir -p "$out/completions" "$out/systemd"
"$bin" man --dir "$out/man" >/dev/null && gzip -9n "$out"/man/*   # Debian: pages gzipped
"$bin" completions bash > "$out/completions/fsverity-fuse"
"$bin" completions zsh > "$out/completions/_fsverity-fuse"
"$bin" completions fish > "$out/completions/fsverity-fuse.fish"
# The units name the binary where scripts/install.sh puts it; the package puts it in /usr/bin.
for unit in docs/systemd/*.mount docs/systemd/*.service; do
  sed 's|/usr/local/bin/fsverity-fuse|/usr/bin/fsverity-fuse|g' "$unit" > "$out/systemd/${unit##*/}"
done
cargo deb --no-build --quiet
