//! The verity layer: what a verity file is to a mount, whatever namespace its
//! name and data come from.
//!
//! - [`state`]: the per-inode state machine (plain, verity, damaged; writers;
//!   an enable in progress), whose transitions are methods returning guards;
//! - [`file`]: a verity file's metadata, digest, signature verdict and shared
//!   verifier;
//! - [`tree`]: finding a file's Merkle tree when it is opened (the store, a
//!   rebuild from the data, a small file's tree from its own data);
//! - [`policy`]: what may be opened and enabled (require-verity,
//!   require-signatures) and what a corruption does;
//! - [`checks`]: the kernel's checks of `FS_IOC_ENABLE_VERITY`, in its order.
//!
//! Nothing here knows about FUSE requests or errnos; errors are typed.

pub(crate) mod audit;
pub(crate) mod checks;
pub(crate) mod file;
pub(crate) mod policy;
pub(crate) mod state;
pub(crate) mod tree;

pub(crate) use checks::{EnableFacts, EnableRefusal, check_enable};
pub(crate) use file::VerityFile;
pub(crate) use policy::{OnCorruption, Policy, PolicyDenial};
pub(crate) use state::{Claim, Damage, NodeVerity, VerityState, WriteGuard, WriteRefused};
pub(crate) use tree::{DataOpener, TreeResolver};
