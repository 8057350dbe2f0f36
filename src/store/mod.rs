//! Where a file's verity metadata and Merkle tree live, and how a file becomes
//! a verity file: the descriptor (and signature) in a user xattr of the file
//! (`meta`), the tree in a content-addressed tree store (`trees`), and the
//! crash-safe enable that writes both (`enable`). Each has its own error type;
//! nothing here knows about FUSE or errnos.

mod enable;
mod meta;
mod trees;

pub use enable::{EnableError, enable_file, read_metadata, read_metadata_at};
pub use meta::{MAX_SIGNATURE_SIZE, METADATA_XATTR, MetadataError, VerityMetadata};
pub use trees::{RebuiltTree, STORE_DIR_NAME, TreeError, TreeStore, rebuild_tree};
