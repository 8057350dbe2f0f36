//! Conversions between the filesystem's types and fuser's: attributes,
//! times (both ways, before the epoch included), file types, open flags.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, FopenFlags, INodeNo, TimeOrNow};

use crate::fs::{Opened, OpenedDir};
use crate::namespace::{Attr, SetTime, Timespec};

pub(super) fn system_time(t: Timespec) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
    } else {
        UNIX_EPOCH - Duration::new(t.sec.unsigned_abs(), 0) + Duration::from_nanos(t.nsec.into())
    }
}

/// The kernel's `(seconds, nanoseconds)` of a time fuser hands over as a
/// `SystemTime`. fuser 0.18 builds times before the epoch as `EPOCH - (|s| +
/// ns)` (src/time.rs, `system_time_from_time`, marked TODO there) instead of
/// `EPOCH - |s| + ns`; this undoes exactly that, so `touch -d 1960-01-01`
/// stores what the caller asked for (tested through the mount).
fn timespec(t: SystemTime) -> Timespec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timespec {
            sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nsec: d.subsec_nanos(),
        },
        Err(before) => {
            let d = before.duration();
            Timespec {
                sec: i64::try_from(d.as_secs()).map_or(i64::MIN, |s| -s),
                nsec: d.subsec_nanos(),
            }
        }
    }
}

pub(super) fn file_type(kind: rustix::fs::FileType) -> FileType {
    use rustix::fs::FileType as R;
    match kind {
        R::Directory => FileType::Directory,
        R::Symlink => FileType::Symlink,
        R::Fifo => FileType::NamedPipe,
        R::Socket => FileType::Socket,
        R::CharacterDevice => FileType::CharDevice,
        R::BlockDevice => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

pub(super) fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: system_time(a.ctime),
        kind: file_type(a.kind()),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

pub(super) fn set_time(t: Option<TimeOrNow>) -> Option<SetTime> {
    t.map(|t| match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(st) => SetTime::At(timespec(st)),
    })
}

/// The kernel keeps (and serves from its cache) the listing of a directory
/// that cannot change.
pub(super) fn opendir_flags(d: OpenedDir) -> FopenFlags {
    match d.keep_listing {
        true => FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
        false => FopenFlags::empty(),
    }
}

pub(super) fn open_flags(o: &Opened) -> FopenFlags {
    // Never FOPEN_PASSTHROUGH: the kernel would read backing data unverified.
    let mut flags = FopenFlags::empty();
    if o.keep_cache {
        flags |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    if !o.flush_on_close {
        // No FLUSH request on close: one round trip less per file read.
        flags |= FopenFlags::FOPEN_NOFLUSH;
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_from_fuser_are_the_kernels() {
        // What fuser 0.18's system_time_from_time makes of the kernel's values.
        let fuser = |sec: i64, nsec: u32| {
            if sec >= 0 {
                UNIX_EPOCH + Duration::new(sec as u64, nsec)
            } else {
                UNIX_EPOCH - Duration::new(sec.unsigned_abs(), nsec)
            }
        };
        for (sec, nsec) in [
            (0i64, 0u32),
            (1, 5),
            (-1, 0),
            (-1, 500_000_000),
            (-315_619_200, 250_000_000),
            (-2, 999_999_999),
        ] {
            assert_eq!(
                timespec(fuser(sec, nsec)),
                Timespec { sec, nsec },
                "{sec}.{nsec}"
            );
        }
    }

    #[test]
    fn attributes_keep_times_before_the_epoch() {
        for (sec, nsec) in [(0i64, 0u32), (-1, 500_000_000), (-315_619_200, 0)] {
            let t = Timespec { sec, nsec };
            let back = fuser_time(system_time(t));
            assert_eq!(back, (sec, nsec));
        }
    }

    /// fuser's own conversion of reply times (time_from_system_time).
    fn fuser_time(t: SystemTime) -> (i64, u32) {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                match d.subsec_nanos() {
                    0 => (-(d.as_secs() as i64), 0),
                    n => (-(d.as_secs() as i64) - 1, 1_000_000_000 - n),
                }
            }
        }
    }
}
