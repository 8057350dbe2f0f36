//! fsverity-fuse: Linux fs-verity for any filesystem, through FUSE.
//!
//! - [`format`]: the fs-verity format (descriptor, tree geometry, digests), byte-exact
//!   with the kernel and fsverity-utils;
//! - [`merkle`]: streaming tree construction and block verification into
//!   [`merkle::VerifiedBytes`];
//! - [`image`]: composefs (EROFS) images, read and written;
//! - [`cli`]: the `fsverity-fuse` command line.

pub mod audit;
pub mod cli;
pub mod error;
pub mod format;
pub mod fs;
pub mod fuse;
pub mod image;
pub mod ioctl;
pub mod merkle;
pub mod mount;
pub mod mountinfo;
pub mod notify;
pub mod signature;
pub mod store;
pub mod sys;
