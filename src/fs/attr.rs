//! File attributes as the filesystem reports them (independent of fuser).

use rustix::fs::Stat;

/// Seconds and nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timespec {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds.
    pub nsec: u32,
}

/// Attributes of one inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Node id (also reported as `st_ino`).
    pub ino: u64,
    /// Size in bytes (for verity files: the verified size from the descriptor).
    pub size: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    /// Access time.
    pub atime: Timespec,
    /// Modification time.
    pub mtime: Timespec,
    /// Status change time.
    pub ctime: Timespec,
    /// Full `st_mode`: type and permission bits.
    pub mode: u32,
    /// Hard links.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number for device nodes.
    pub rdev: u32,
    /// Preferred I/O size.
    pub blksize: u32,
}

impl Attr {
    /// Attributes from a backing `stat`, reported under node id `ino`.
    pub fn from_stat(ino: u64, st: &Stat) -> Self {
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
        }
    }
}

/// The ctime of a stat as a comparable pair.
pub fn ctime_of(st: &Stat) -> (i64, u64) {
    (st.st_ctime, st.st_ctime_nsec)
}
