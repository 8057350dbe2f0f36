#!/usr/bin/env bash
# Installs fsverity-fuse: the binary, the mount(8) helper link, and the example
# systemd units from docs/systemd (installed, not enabled). Safe to re-run.
#   scripts/install.sh [--binary PATH]    (default: cargo build --release)
# Environment: PREFIX=/usr/local  SBINDIR=/sbin  UNITDIR=/etc/systemd/system
#              DESTDIR=            (stage everything under this root instead)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "install: $*" >&2; exit 1; }

binary=
while [[ $# -gt 0 ]]; do
  case $1 in
    --binary) binary=${2:-}; [[ -n $binary ]] || die "--binary needs a path"; shift 2 ;;
    --binary=*) binary=${1#*=}; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "install: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
if [[ -z $binary ]]; then
  cargo build --release --locked --manifest-path "$root/Cargo.toml"
  binary=${CARGO_TARGET_DIR:-$root/target}/release/fsverity-fuse
fi
[[ -f $binary && -x $binary ]] || die "'$binary' is not an executable file"

prefix=${PREFIX:-/usr/local} sbindir=${SBINDIR:-/sbin} unitdir=${UNITDIR:-/etc/systemd/system}
dest=${DESTDIR:-}
installed=$prefix/bin/fsverity-fuse

install -D -m 0755 "$binary" "$dest$installed"
# mount(8) runs /sbin/mount.<type> for `-t fuse.fsverity-fuse` and fstab lines.
install -d "$dest$sbindir"
ln -sfn "$installed" "$dest$sbindir/mount.fuse.fsverity-fuse"
install -d "$dest$unitdir"
for unit in "$root"/docs/systemd/*.mount "$root"/docs/systemd/*.service; do
  target=$dest$unitdir/${unit##*/}
  sed "s|/usr/local/bin/fsverity-fuse|$installed|g" "$unit" > "$target.tmp"
  chmod 0644 "$target.tmp"
  mv -f "$target.tmp" "$target"
done
# Only a running systemd has units to reload (and never for a staged install).
if [[ -z $dest && -d /run/systemd/system ]]; then
  systemctl daemon-reload
fi
echo "installed $dest$installed, $dest$sbindir/mount.fuse.fsverity-fuse -> $installed, units in $dest$unitdir"
