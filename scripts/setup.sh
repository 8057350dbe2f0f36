#!/usr/bin/env bash
# Installs what fsverity-fuse's scripts need, only when missing, on Debian/Ubuntu.
# Source it and call the functions, or run it to set up everything:
#   setup_packages [PKG...]   Debian packages (default: everything the project uses)
#   setup_rust                cargo with rustfmt and clippy
#   setup_fuse                /dev/fuse (fatal under CI=true when missing)
SETUP_PACKAGES=(fuse3 fsverity attr acl e2fsprogs openssl bindfs fio hyperfine rsync jq bc python3 xxd rpm gnupg cpio
  erofs-utils libssl-dev pkg-config
  util-linux systemd
  dpkg-dev binutils man-db bash-completion zsh fish)

setup_die() { echo "setup: $*" >&2; exit 1; }
setup_root() { if [[ $EUID -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@";
  else echo "setup: need root or sudo to run: $*" >&2; return 1; fi; }

setup_packages() {
  local missing=() p
  for p in "${@:-${SETUP_PACKAGES[@]}}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null || setup_die "install these packages first: ${missing[*]}"
  echo "setup: installing ${missing[*]}" >&2
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -qq) out
  out=$(setup_root "${apt[@]}" update 2>&1 && setup_root "${apt[@]}" install -y "${missing[@]}" 2>&1) ||
    { echo "$out" >&2; setup_die "could not install ${missing[*]}"; }
}

setup_rust() {
  [[ -x ${HOME:-}/.cargo/bin/cargo ]] && PATH="$HOME/.cargo/bin:$PATH"
  command -v cargo >/dev/null || setup_die "cargo not found. Install Rust with rustup:
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \\
    --component rustfmt,clippy && . \"\$HOME/.cargo/env\""
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    command -v rustup >/dev/null || setup_die "cargo fmt / cargo clippy missing and no rustup"
    rustup component add rustfmt clippy
  fi
}

setup_fuse() {
  [[ -c /dev/fuse ]] || setup_root modprobe fuse 2>/dev/null || true
  if [[ ! -c /dev/fuse ]] && grep -qw fuse /proc/filesystems; then
    setup_root mknod -m 0666 /dev/fuse c 10 229 || true
  fi
  [[ -c /dev/fuse ]] && return 0
  [[ ${CI:-} == true ]] && setup_die "/dev/fuse is missing: mount tests cannot run under CI"
  echo "setup: warning: /dev/fuse is missing; tests that mount will be skipped" >&2
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  setup_packages "$@"
  setup_rust
  setup_fuse
fi
