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

/// Undoes the octal escapes of /proc/self/mountinfo (`\040` for a space...).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// (mount point, source) of every fsverity-fuse mount.
pub(crate) fn fsverity_mounts() -> Vec<(PathBuf, PathBuf)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<(PathBuf, PathBuf)> {
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields.iter().position(|f| *f == "-")?;
    if *fields.get(sep + 1)? != "fuse.fsverity-fuse" {
        return None;
    }
    let mountpoint = unescape(fields.get(4)?);
    let source = unescape(fields.get(sep + 2)?);
    Some((PathBuf::from(mountpoint), PathBuf::from(source)))
}

/// Maps `path` through the fsverity-fuse mount containing it, if any.
pub(crate) fn locate(path: &Path) -> Located {
    let Ok(canonical) = path.canonicalize() else {
        return Located {
            file: path.to_path_buf(),
            backing_root: None,
        };
    };
    let best = fsverity_mounts()
        .into_iter()
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

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/x\134y"), r"/x\y");
    }
}
