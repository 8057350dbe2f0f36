//! `fsverity-fuse enable FILE...`: make files of a backing directory verity files.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::args::TreeArgs;
use crate::merkle::BuildOptions;
use crate::store::{STORE_DIR_NAME, TreeStore, enable_file};

/// Enable fs-verity on files of a backing directory.
#[derive(Args, Debug)]
pub(crate) struct EnableArgs {
    /// Files to enable.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) tree: TreeArgs,
    /// Tree store to write trees into. Default: the nearest `.fsverity-fuse`
    /// directory above the file (a mount creates one at the top of its backing
    /// directory); without one, the tree is rebuilt when the file is first opened.
    #[arg(long = "tree-dir", value_name = "DIR")]
    pub(crate) tree_dir: Option<PathBuf>,
    /// Hashing threads (0 = every core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) threads: usize,
}

/// The nearest tree store above `file`.
fn find_store(file: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(file).ok()?;
    abs.ancestors()
        .skip(1)
        .map(|dir| dir.join(STORE_DIR_NAME))
        .find(|p| p.is_dir())
}

pub(crate) fn run(args: &EnableArgs) -> Result<bool> {
    let explicit = match &args.tree_dir {
        Some(dir) => Some(
            TreeStore::open(dir).with_context(|| format!("tree directory {}", dir.display()))?,
        ),
        None => None,
    };
    let mut ok = true;
    for path in &args.files {
        let found;
        let store = match (&explicit, find_store(path)) {
            (Some(s), _) => Some(s),
            (None, Some(dir)) => {
                found = TreeStore::existing(&dir)
                    .with_context(|| format!("tree store {}", dir.display()))?;
                Some(&found)
            }
            (None, None) => None,
        };
        let result = File::open(path)
            .with_context(|| format!("can't open '{}'", path.display()))
            .and_then(|file| {
                enable_file(
                    &file,
                    store,
                    &args.tree.params(),
                    None,
                    BuildOptions {
                        threads: args.threads,
                    },
                    &|_| Ok(()),
                )
                .with_context(|| format!("can't enable verity on '{}'", path.display()))
            });
        match result {
            Ok(meta) => {
                let d = &meta.descriptor;
                println!("{}:{} {}", d.algorithm(), d.digest(), path.display());
                if store.is_none() && d.geometry().tree_size() > 0 {
                    eprintln!(
                        "note: no tree store found above '{}' (pass --tree-dir); its tree will be rebuilt when first opened",
                        path.display()
                    );
                }
            }
            Err(e) => {
                super::report(&e);
                ok = false;
            }
        }
    }
    Ok(ok)
}
