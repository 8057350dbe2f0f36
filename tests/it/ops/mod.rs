//! The operational side: mount(8), fstab and the helper form, the daemon's
//! lifecycle (start failures, umount, signals, sd_notify), the systemd units in
//! docs/systemd, scripts/install.sh, container-style namespaces, the status
//! counters, the `--on-corruption` modes, and the Debian package (installed
//! for real, then removed).
//!
//! Processes that run in other namespaces or as other users run [`probe`]: this
//! test binary again, which reports what each file operation returned (bytes
//! or errno) instead of leaving the tests to parse the output of shell tools.

mod support;

mod corruption;
mod install;
mod lifecycle;
mod mount_helper;
mod namespaces;
mod packaging;
mod probe;
mod rootless;
mod status;
mod systemd;
