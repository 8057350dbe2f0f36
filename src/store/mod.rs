//! Where a file's verity metadata and Merkle tree live: the descriptor (and
//! signature) in a user xattr of the backing file, the tree in a content-addressed
//! tree store.

mod enable;
mod lazy;
mod meta;
mod trees;

pub use enable::{EnableError, SignFn, enable_file, read_metadata, read_metadata_at};
pub use lazy::{LazyTree, OnRebuild};
pub use meta::{MAX_SIGNATURE_SIZE, METADATA_XATTR, MetadataError, VerityMetadata};
pub use trees::{
    STORE_DIR_NAME, TempTree, TreeData, TreeError, TreeReader, TreeStore, rebuild_tree,
};
