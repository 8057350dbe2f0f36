//! `fsverity-fuse dump-metadata {merkle_tree|descriptor|signature} FILE`: what the
//! kernel's FS_IOC_READ_VERITY_METADATA would return (FUSE cannot carry that
//! ioctl). Works on backing files and on files inside a live mount.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use super::locate::{locate, store_dir};
use crate::merkle::{BuildOptions, check_tree};
use crate::store::{RebuiltTree, TreeStore, read_metadata, rebuild_tree};

/// Which metadata to dump.
#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "snake_case")]
pub(crate) enum MetadataKind {
    /// The Merkle tree, root level first.
    MerkleTree,
    /// The 256-byte descriptor.
    Descriptor,
    /// The signature.
    Signature,
}

/// Dump fs-verity metadata of a verity file to standard output.
#[derive(Args, Debug)]
pub(crate) struct DumpArgs {
    /// Which metadata.
    pub(crate) kind: MetadataKind,
    /// A verity file (backing file, or file in a live mount).
    pub(crate) file: PathBuf,
    /// Start at this byte.
    #[arg(long, default_value_t = 0)]
    pub(crate) offset: u64,
    /// At most this many bytes.
    #[arg(long)]
    pub(crate) length: Option<u64>,
    /// Tree store to read the tree from (default: the mount's or the nearest one).
    #[arg(long = "tree-dir", value_name = "DIR")]
    pub(crate) tree_dir: Option<PathBuf>,
}

pub(crate) fn run(args: &DumpArgs) -> Result<bool> {
    let located = locate(&args.file);
    let path = &located.file;
    let file = File::open(path).with_context(|| format!("can't open '{}'", path.display()))?;
    let meta = match read_metadata(&file)
        .with_context(|| format!("reading metadata of '{}'", path.display()))?
    {
        Some(Ok(m)) => m,
        Some(Err(e)) => bail!("'{}' has damaged verity metadata: {e}", args.file.display()),
        None => bail!("'{}' is not a verity file", args.file.display()),
    };
    let bytes = match args.kind {
        MetadataKind::Descriptor => meta.descriptor.encode().to_vec(),
        MetadataKind::Signature => match meta.signature {
            Some(s) => s,
            None => bail!("'{}' has no signature", args.file.display()),
        },
        MetadataKind::MerkleTree => {
            let store = store_dir(&located, args.tree_dir.as_deref())
                .and_then(|d| TreeStore::existing(&d).ok());
            let stored = store
                .as_ref()
                .and_then(|s| s.open_tree(&meta.descriptor).ok().flatten())
                .and_then(|mut f| {
                    let mut v = Vec::new();
                    std::io::Read::read_to_end(&mut f, &mut v).ok()?;
                    check_tree(&meta.descriptor, &v).is_ok().then_some(v)
                });
            match stored {
                Some(v) => v,
                None => match rebuild_tree(None, &file, &meta.descriptor, BuildOptions::default())
                    .with_context(|| {
                    format!("rebuilding the tree of '{}'", args.file.display())
                })? {
                    RebuiltTree::Memory(v) => v,
                    RebuiltTree::Stored(_) => unreachable!("no store was given"),
                },
            }
        }
    };
    let start = usize::try_from(args.offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let len = args
        .length
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let end = start.saturating_add(len).min(bytes.len());
    std::io::stdout()
        .write_all(&bytes[start..end])
        .context("writing to standard output")?;
    Ok(true)
}
