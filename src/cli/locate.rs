//! Finding the backing file behind a path in a live fsverity-fuse mount, and
//! the tree store that belongs to a backing file.

use std::path::{Path, PathBuf};

use crate::store::STORE_DIR_NAME;

/// Where a file's bytes and metadata really live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    /// The backing file.
    pub(crate) file: PathBuf,
    /// The backing directory of the mount it was found through, if any.
    pub(crate) backing_root: Option<PathBuf>,
}

/// Maps `path` through the fsverity-fuse mount containing it, if any.
pub(crate) fn locate(path: &Path) -> Located {
    let Ok(canonical) = path.canonicalize() else {
        return Located {
            file: path.to_path_buf(),
            backing_root: None,
        };
    };
    let best = crate::mount::mountinfo::fsverity_mounts()
        .into_iter()
        .map(|e| (e.mountpoint, e.source))
        .filter(|(mnt, _)| canonical.starts_with(mnt))
        .max_by_key(|(mnt, _)| mnt.components().count());
    match best {
        Some((mnt, source)) => {
            let rel = canonical.strip_prefix(&mnt).unwrap_or(Path::new(""));
            Located {
                file: source.join(rel),
                backing_root: Some(source),
            }
        }
        None => Located {
            file: canonical,
            backing_root: None,
        },
    }
}

/// The tree store for a located file: `explicit`, else the mount's default
/// store, else the nearest `.fsverity-fuse` directory above the file.
pub(crate) fn store_dir(located: &Located, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = explicit {
        return Some(dir.to_path_buf());
    }
    if let Some(root) = &located.backing_root {
        let dir = root.join(STORE_DIR_NAME);
        return std::fs::symlink_metadata(&dir)
            .is_ok_and(|m| m.is_dir())
            .then_some(dir);
    }
    let abs = std::path::absolute(&located.file).ok()?;
    abs.ancestors()
        .skip(1)
        .map(|dir| dir.join(STORE_DIR_NAME))
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
}
