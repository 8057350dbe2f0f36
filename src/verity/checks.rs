//! The kernel's checks of `FS_IOC_ENABLE_VERITY` that come before the writer
//! check, in its order (fs/verity/enable.c, `fsverity_ioctl_enable`): the
//! kernel makes none of them for FUSE, so the daemon must. The facts are
//! gathered by the caller; the decision is here, and pure.
//!
//! (Argument checks come first, in `ioctl::parse_enable`; writers, the
//! algorithm and block size, existing verity and a running enable come after,
//! in [`super::state::NodeVerity::begin_enable`].)

/// What the checks need to know about the file and the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EnableFacts {
    /// The superblock is read-only (`--ro`, `mount -o remount,ro`).
    pub(crate) super_read_only: bool,
    /// The mount (or its superblock) is read-only.
    pub(crate) mount_read_only: bool,
    /// The file has the immutable flag.
    pub(crate) immutable: bool,
    /// The file has the append-only flag.
    pub(crate) append_only: bool,
    /// The caller may write the file (mode bits and ACL).
    pub(crate) may_write: bool,
    /// The descriptor the ioctl came through is open for reading.
    pub(crate) readable: bool,
    /// What the file is.
    pub(crate) kind: FileKind,
}

/// The kinds of file the checks tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// Anything else (FIFO, socket, device).
    Other,
}

/// Why the kernel would refuse the enable at this stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnableRefusal {
    /// EROFS: read-only filesystem or mount.
    #[error("read-only mount")]
    ReadOnly,
    /// EPERM: the file is immutable.
    #[error("the file is immutable")]
    Immutable,
    /// EACCES: the caller may not write the file.
    #[error("enabling verity needs write permission on the file")]
    NoWriteAccess,
    /// EBADF: the descriptor is not open for reading.
    #[error("the file is not open for reading")]
    NotReadable,
    /// EPERM: the file is append-only.
    #[error("the file is append-only")]
    AppendOnly,
    /// EISDIR.
    #[error("is a directory")]
    Directory,
    /// EINVAL: not a regular file.
    #[error("not a regular file")]
    NotRegular,
}

/// `inode_permission(MAY_WRITE)`, read access, append-only, file type and a
/// read-only mount, in the kernel's order.
pub(crate) fn check_enable(f: &EnableFacts) -> Result<(), EnableRefusal> {
    use EnableRefusal::*;
    // inode_permission: sb_permission (no write access to a read-only
    // filesystem's regular files, directories and symlinks), then immutable,
    // then the permission bits.
    if f.super_read_only
        && matches!(
            f.kind,
            FileKind::Regular | FileKind::Directory | FileKind::Symlink
        )
    {
        return Err(ReadOnly);
    }
    if f.immutable {
        return Err(Immutable);
    }
    if !f.may_write {
        return Err(NoWriteAccess);
    }
    if !f.readable {
        return Err(NotReadable);
    }
    if f.append_only {
        return Err(AppendOnly);
    }
    match f.kind {
        FileKind::Regular => {}
        FileKind::Directory => return Err(Directory),
        _ => return Err(NotRegular),
    }
    if f.mount_read_only {
        return Err(ReadOnly);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: EnableFacts = EnableFacts {
        super_read_only: false,
        mount_read_only: false,
        immutable: false,
        append_only: false,
        may_write: true,
        readable: true,
        kind: FileKind::Regular,
    };

    #[test]
    fn a_writable_readable_regular_file_passes() {
        assert_eq!(check_enable(&OK), Ok(()));
    }

    #[test]
    fn each_refusal_alone() {
        use EnableRefusal::*;
        let cases = [
            (
                EnableFacts {
                    super_read_only: true,
                    mount_read_only: true,
                    ..OK
                },
                ReadOnly,
            ),
            (
                EnableFacts {
                    mount_read_only: true,
                    ..OK
                },
                ReadOnly,
            ),
            (
                EnableFacts {
                    immutable: true,
                    ..OK
                },
                Immutable,
            ),
            (
                EnableFacts {
                    may_write: false,
                    ..OK
                },
                NoWriteAccess,
            ),
            (
                EnableFacts {
                    readable: false,
                    ..OK
                },
                NotReadable,
            ),
            (
                EnableFacts {
                    append_only: true,
                    ..OK
                },
                AppendOnly,
            ),
            (
                EnableFacts {
                    kind: FileKind::Directory,
                    ..OK
                },
                Directory,
            ),
            (
                EnableFacts {
                    kind: FileKind::Other,
                    ..OK
                },
                NotRegular,
            ),
            (
                EnableFacts {
                    kind: FileKind::Symlink,
                    ..OK
                },
                NotRegular,
            ),
        ];
        for (facts, want) in cases {
            assert_eq!(check_enable(&facts), Err(want), "{facts:?}");
        }
    }

    #[test]
    fn the_kernels_order_decides_between_several() {
        use EnableRefusal::*;
        // Permission (EACCES) before read access (EBADF): a write-only
        // descriptor of a file the caller may not write.
        let f = EnableFacts {
            may_write: false,
            readable: false,
            ..OK
        };
        assert_eq!(check_enable(&f), Err(NoWriteAccess));
        // A read-only superblock before everything: EROFS even for a directory.
        let f = EnableFacts {
            super_read_only: true,
            kind: FileKind::Directory,
            ..OK
        };
        assert_eq!(check_enable(&f), Err(ReadOnly));
        // A read-only mount (not superblock) after the file type: EISDIR first.
        let f = EnableFacts {
            mount_read_only: true,
            kind: FileKind::Directory,
            ..OK
        };
        assert_eq!(check_enable(&f), Err(Directory));
        // A FIFO on a read-only superblock is not covered by sb_permission.
        let f = EnableFacts {
            super_read_only: true,
            kind: FileKind::Other,
            ..OK
        };
        assert_eq!(check_enable(&f), Err(NotRegular));
        // Immutable before the permission bits, append-only after read access.
        let f = EnableFacts {
            immutable: true,
            may_write: false,
            ..OK
        };
        assert_eq!(check_enable(&f), Err(Immutable));
        let f = EnableFacts {
            append_only: true,
            readable: false,
            ..OK
        };
        assert_eq!(check_enable(&f), Err(NotReadable));
    }
}
