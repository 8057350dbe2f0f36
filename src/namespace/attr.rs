//! File attributes as the filesystem reports them (independent of fuser).

use rustix::fs::Stat;

/// Seconds and nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timespec {
    /// Seconds.
    pub(crate) sec: i64,
    /// Nanoseconds.
    pub(crate) nsec: u32,
}

/// Attributes of one inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Attr {
    /// Node id (also reported as `st_ino`).
    pub(crate) ino: u64,
    /// Size in bytes (for verity files: the verified size from the descriptor).
    pub(crate) size: u64,
    /// 512-byte blocks allocated.
    pub(crate) blocks: u64,
    /// Access time.
    pub(crate) atime: Timespec,
    /// Modification time.
    pub(crate) mtime: Timespec,
    /// Status change time.
    pub(crate) ctime: Timespec,
    /// Full `st_mode`: type and permission bits.
    pub(crate) mode: u32,
    /// Hard links.
    pub(crate) nlink: u32,
    /// Owner.
    pub(crate) uid: u32,
    /// Group.
    pub(crate) gid: u32,
    /// Device number for device nodes.
    pub(crate) rdev: u32,
    /// Preferred I/O size.
    pub(crate) blksize: u32,
    /// A verity file, as the filesystem reports it (namespaces leave it
    /// false): immutable through the mount, so the kernel may keep its entry
    /// and attributes longer (`--verity-attr-timeout`).
    pub(crate) verity: bool,
}

impl Attr {
    /// Attributes from a backing `stat`, reported under node id `ino`.
    pub(crate) fn from_stat(ino: u64, st: &Stat) -> Self {
        let ts = |sec: i64, nsec: u64| Timespec {
            sec,
            nsec: nsec as u32,
        };
        Self {
            ino,
            size: st.st_size.max(0) as u64,
            blocks: st.st_blocks as u64,
            atime: ts(st.st_atime, st.st_atime_nsec),
            mtime: ts(st.st_mtime, st.st_mtime_nsec),
            ctime: ts(st.st_ctime, st.st_ctime_nsec),
            mode: st.st_mode,
            nlink: st.st_nlink as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u32,
            blksize: st.st_blksize as u32,
            verity: false,
        }
    }
}

impl Attr {
    /// The file type.
    pub(crate) fn kind(&self) -> rustix::fs::FileType {
        rustix::fs::FileType::from_raw_mode(self.mode)
    }

    /// A regular file.
    pub(crate) fn is_regular(&self) -> bool {
        self.kind() == rustix::fs::FileType::RegularFile
    }
}
