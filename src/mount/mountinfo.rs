//! Reading /proc/self/mountinfo: which fsverity-fuse mounts exist, where, over
//! which backing directory.

use std::path::{Path, PathBuf};

/// The filesystem type fsverity-fuse mounts show.
pub const FSTYPE: &str = "fuse.fsverity-fuse";

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The device number, `major:minor` (also the name of its backing device info).
    pub device: String,
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// Filesystem type (`fuse.fsverity-fuse` for ours).
    pub fstype: String,
    /// Source (for ours: the backing directory).
    pub source: PathBuf,
    /// Per-mount options (`rw,nosuid,nodev...`).
    pub mount_options: String,
    /// Superblock options (`rw,user_id=0...`).
    pub super_options: String,
}

impl MountEntry {
    /// Whether writes through this mount are refused: the mount or its
    /// superblock is read-only (`mount -o remount,ro` sets both).
    pub fn read_only(&self) -> bool {
        let ro = |opts: &str| opts.split(',').any(|o| o == "ro");
        ro(&self.mount_options) || ro(&self.super_options)
    }

    /// Whether the superblock itself is read-only.
    pub fn super_read_only(&self) -> bool {
        self.super_options.split(',').any(|o| o == "ro")
    }
}

/// Undoes the octal escapes of mountinfo (`\040` for a space...).
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

fn parse_line(line: &str) -> Option<MountEntry> {
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields.iter().position(|f| *f == "-")?;
    Some(MountEntry {
        device: (*fields.get(2)?).to_owned(),
        mountpoint: PathBuf::from(unescape(fields.get(4)?)),
        fstype: (*fields.get(sep + 1)?).to_owned(),
        source: PathBuf::from(unescape(fields.get(sep + 2)?)),
        mount_options: (*fields.get(5)?).to_owned(),
        super_options: fields.get(sep + 3).copied().unwrap_or_default().to_owned(),
    })
}

/// Every mount of this process's namespace.
pub fn entries() -> Vec<MountEntry> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().filter_map(parse_line).collect()
}

/// The fsverity-fuse mounts.
pub fn fsverity_mounts() -> Vec<MountEntry> {
    entries()
        .into_iter()
        .filter(|e| e.fstype == FSTYPE)
        .collect()
}

/// Whether an fsverity-fuse mount sits at `path` (canonical).
pub fn is_fsverity_mount(path: &Path) -> bool {
    fsverity_mounts().iter().any(|e| e.mountpoint == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_unescapes() {
        let line = r"36 25 0:39 / /mnt/a\040b rw,nosuid - fuse.fsverity-fuse /srv/back\134ing rw,user_id=0";
        let e = parse_line(line).expect("parses");
        assert_eq!(e.mountpoint, PathBuf::from("/mnt/a b"));
        assert_eq!(e.fstype, FSTYPE);
        assert_eq!(e.device, "0:39");
        assert_eq!(e.source, PathBuf::from(r"/srv/back\ing"));
        assert!(!e.read_only());
        let ro =
            parse_line("36 25 0:39 / /m ro,nosuid - fuse.fsverity-fuse /b rw").expect("parses");
        assert!(ro.read_only() && !ro.super_read_only());
        let sro =
            parse_line("36 25 0:39 / /m rw - fuse.fsverity-fuse /b ro,user_id=0").expect("parses");
        assert!(sro.read_only() && sro.super_read_only());
        assert_eq!(unescape("/plain"), "/plain");
        assert!(parse_line("garbage").is_none());
    }
}
