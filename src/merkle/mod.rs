//! Merkle trees: streaming construction and block verification.

mod builder;
mod cache;
mod check;
mod source;
mod verify;

pub use builder::{BuildError, BuildOptions, NullSink, TreeSink, VecSink, build_tree};
pub use cache::{BlockCache, CacheStats};
pub use check::check_tree;
pub use source::{DataSource, TreeSource, read_full};
pub use verify::{Corruption, ReadStats, VerifiedBytes, Verifier, VerifyError};

#[cfg(test)]
mod tests;
