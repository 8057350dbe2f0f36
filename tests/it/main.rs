//! The integration test binary: one binary, one module per area.

mod digest;
mod hardening;
mod image;
mod ioctl;
mod mount;
mod ops;
mod progress;
mod signatures;
mod util;
