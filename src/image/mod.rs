//! Verified images: composefs (EROFS) metadata images whose file contents live
//! in an object store under their fs-verity digests (issue 13).
//!
//! A composefs image records the whole tree — names, types, modes, owners,
//! mtimes, link counts, xattrs, symlink targets, device numbers, and the bytes
//! of files of at most 64 bytes — and, for every larger regular file, the
//! fs-verity SHA-256 digest of its content (`trusted.overlay.metacopy`) and the
//! object holding it (`trusted.overlay.redirect` = `/xx/rest-of-hex`). The
//! kernel mounts one as `mount.composefs` does: the image as EROFS on a loop
//! device, and overlayfs over it with the object store as a data-only layer
//! (`metacopy=on,redirect_dir=on,lowerdir=IMAGE_MNT::OBJECTS`). This module
//! reads such images ([`Image`]) exactly as that mount shows them, and writes
//! them ([`write_image`], used by `fsverity-fuse mkimage`).
//!
//! # Why a reader and writer of our own, not the `composefs` crate
//!
//! The `composefs` crate (composefs-rs 0.9) reads and writes these images and
//! its writer is byte-compatible with C `mkcomposefs`. It was evaluated and is
//! used as a dev-dependency, as the independent writer the reader is tested
//! against (`tests/it/image/`). It is not a runtime dependency because:
//!
//! - weight: it pulls tokio, OpenSSL (a C library), zstd (C, built by cc),
//!   rand, a varlink stack and an ioctl crate into a daemon whose job is to be
//!   small and auditable; its API is pre-1.0 and tied to its own repository
//!   model (`FileSystem<ObjectID>`, splitstreams);
//! - hostile input: the image is parsed by the daemon, so the parser must be
//!   ours to harden and fuzz. Ours walks the tree once with an explicit queue,
//!   bounds-checks every offset, caps the metadata it reads at a multiple of the
//!   image size, and refuses (with a typed error naming the inode) anything the
//!   kernel would show differently from what a query answers;
//! - the format subset composefs uses is small: the superblock, compact and
//!   extended inodes, flat-plain, flat-inline and chunk-based layouts,
//!   directories, inline and shared xattrs with the standard name prefixes.
//!   Reader and writer are about a thousand lines each, in small files.
//!
//! Refused, because composefs never writes them: compression, multiple
//! devices, long xattr name prefixes, 48-bit layouts, metaboxes, directory
//! block sizes other than the block size, metadata-only files without a
//! SHA-256 digest or whose redirect is not the object path of that digest,
//! and overlayfs "xwhiteouts".
//!
//! Layout: `erofs` (on-disk structures), `overlay` (the overlayfs
//! conventions), `reader/` (parsing: the walk, xattrs, data extents,
//! directory blocks), `image` and `model` (the queries and their answers),
//! `writer` (image bytes from a [`Tree`]), [`scan`] (a [`Tree`] and the object
//! store from a directory), `error`.

mod erofs;
mod error;
#[allow(clippy::module_inception)]
mod image;
mod model;
mod overlay;
mod reader;
pub mod scan;
mod writer;

#[cfg(test)]
mod tests;

pub use erofs::{makedev, split_dev};
pub use error::{ImageError, Problem, QueryError};
pub use image::{Image, ReadDir};
pub use model::{Attr, Content, Data, DirEntry, External, FileType, Ino};
pub use overlay::{MetacopyError, object_path};
pub use writer::{Body, INLINE_MAX, Node, Tree, WriteError, write_image};
