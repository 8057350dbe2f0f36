//! Real FUSE mounts of `fsverity-fuse mount`.

pub mod harness;

mod basic;
