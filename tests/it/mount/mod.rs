//! Real FUSE mounts of `fsverity-fuse mount`.

pub mod harness;
pub mod support;

mod basic;
mod concurrency;
mod errors;
mod escape;
mod immutable;
mod lifecycle;
mod mmap;
mod passthrough;
mod readonly;
mod reads;
mod tamper;
