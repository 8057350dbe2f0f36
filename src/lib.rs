//! fsverity-fuse: Linux fs-verity for any filesystem, through FUSE.
//!
//! The reusable part — what another project would take, as composefs-rs
//! exposes its fsverity module — is public:
//!
//! - [`format`]: the fs-verity format (descriptor, tree geometry, digests),
//!   byte-exact with the kernel and fsverity-utils;
//! - [`merkle`]: streaming tree construction and block verification into
//!   [`merkle::VerifiedBytes`], with a cache of verified tree blocks;
//! - [`signature`]: Ed25519 and the kernel's PKCS#7 signatures over the
//!   formatted digest, and the trust set they are checked against;
//! - [`image`]: composefs (EROFS) images: a hardened reader and a writer;
//! - [`cli::main`]: the `fsverity-fuse` command line.
//!
//! Everything else is the daemon's and crate-private. The layers, each
//! depending only on those before it (docs/ARCHITECTURE.md): `format` →
//! `merkle` → `store` (metadata xattr, tree store, enable) → `verity` (per-inode
//! state, trees at open, policy, the kernel's enable checks) → `namespace`
//! (where names and data come from: the backing-directory passthrough) → `fs`
//! (the filesystem logic) → `fuse` (the thin adapter) → `mount` → `cli`.

pub mod cli;
pub(crate) mod error;
pub mod format;
pub(crate) mod fs;
pub(crate) mod fuse;
pub mod image;
pub(crate) mod ioctl;
pub mod merkle;
pub(crate) mod mount;
pub(crate) mod namespace;
pub mod signature;
pub(crate) mod store;
pub(crate) mod sys;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod verity;
