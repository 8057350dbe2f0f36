//! The thin fuser adapter: turns kernel requests into calls of [`VerityFs`] and
//! results into replies. No filesystem logic lives here.
//!
//! Every handler runs inside `catch_unwind`: a panic drops the reply, which
//! answers EIO, and the event-loop thread keeps serving.

use std::ffi::OsStr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyIoctl, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};

use crate::error::Error;
use crate::fs::{Attr, Caller, Opened, SetAttr, SetTime, Timespec, VerityFs, XattrReply};
use crate::ioctl;

/// How long the kernel may cache attributes and entries.
#[derive(Clone, Copy, Debug)]
pub struct Ttls {
    /// Attribute cache lifetime.
    pub attr: Duration,
    /// Directory entry cache lifetime.
    pub entry: Duration,
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            attr: Duration::from_secs(1),
            entry: Duration::from_secs(1),
        }
    }
}

/// The fuser `Filesystem` around a [`VerityFs`].
#[derive(Debug)]
pub struct FuseAdapter {
    fs: Arc<VerityFs>,
    ttl: Ttls,
}

impl FuseAdapter {
    /// Wraps `fs`.
    pub fn new(fs: Arc<VerityFs>, ttl: Ttls) -> Self {
        Self { fs, ttl }
    }
}

fn errno(e: &Error) -> Errno {
    Errno::from_i32(e.errno())
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

/// Runs a handler, turning a panic into an EIO reply (the dropped reply sends it).
fn guarded(op: &'static str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!(op, "request handler panicked; replied EIO");
    }
}

fn log_err(op: &'static str, e: &Error) {
    match e.errno() {
        libc::EIO => tracing::debug!(op, error = %e, "request failed"),
        _ => tracing::trace!(op, error = %e, "request failed"),
    }
}

fn system_time(t: Timespec) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
    } else {
        UNIX_EPOCH - Duration::new(t.sec.unsigned_abs(), 0) + Duration::from_nanos(t.nsec.into())
    }
}

fn file_type(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: system_time(a.ctime),
        kind: file_type(a.mode),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

fn set_time(t: Option<TimeOrNow>) -> Option<SetTime> {
    t.map(|t| match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(st) => SetTime::At(timespec(st)),
    })
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

fn dir_entry_type(kind: rustix::fs::FileType) -> FileType {
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

impl FuseAdapter {
    fn entry(&self, reply: ReplyEntry, op: &'static str, r: crate::error::Result<Attr>) {
        match r {
            Ok(a) => reply.entry_with_ttls(
                &self.ttl.attr,
                &self.ttl.entry,
                &file_attr(&a),
                Generation(0),
            ),
            Err(e) => {
                log_err(op, &e);
                reply.error(errno(&e))
            }
        }
    }

    fn empty(reply: ReplyEmpty, op: &'static str, r: crate::error::Result<()>) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => {
                log_err(op, &e);
                reply.error(errno(&e))
            }
        }
    }

    fn attr(&self, reply: ReplyAttr, op: &'static str, r: crate::error::Result<Attr>) {
        match r {
            Ok(a) => reply.attr(&self.ttl.attr, &file_attr(&a)),
            Err(e) => {
                log_err(op, &e);
                reply.error(errno(&e))
            }
        }
    }

    fn xattr(reply: ReplyXattr, op: &'static str, r: crate::error::Result<XattrReply>) {
        match r {
            Ok(XattrReply::Size(n)) => reply.size(n),
            Ok(XattrReply::Data(d)) => reply.data(&d),
            Err(e) => {
                log_err(op, &e);
                reply.error(errno(&e))
            }
        }
    }
}

impl FuseAdapter {
    #[allow(clippy::too_many_arguments)]
    fn ioctl(
        &self,
        req: &Request,
        ino: u64,
        fh: u64,
        cmd: u32,
        in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        let fail = |reply: ReplyIoctl, e: Error| {
            log_err("ioctl", &e);
            reply.error(errno(&e))
        };
        match cmd {
            ioctl::FS_IOC_ENABLE_VERITY => {
                let request = match ioctl::parse_enable(in_data) {
                    Ok(r) => r,
                    Err(e) => return fail(reply, e),
                };
                // Hashing a large file must not hold a request thread.
                let fs = self.fs.clone();
                let who = caller(req);
                let spawned = std::thread::Builder::new()
                    .name("enable-verity".into())
                    .spawn(move || {
                        guarded("enable-verity", || {
                            match fs.enable_verity(ino, fh, request, who) {
                                Ok(()) => reply.ioctl(0, &[]),
                                Err(e) => fail(reply, e),
                            }
                        })
                    });
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start the enable thread");
                }
            }
            ioctl::FS_IOC_MEASURE_VERITY => {
                let r = self.fs.measure(ino).and_then(|(alg, digest)| {
                    ioctl::encode_measure(in_data, alg, digest.as_bytes())
                });
                match r {
                    Ok(out) if out.len() <= out_size as usize => reply.ioctl(0, &out),
                    Ok(_) => fail(reply, Error::Overflow),
                    Err(e) => fail(reply, e),
                }
            }
            ioctl::FS_IOC_GETFLAGS => match self.fs.get_flags(ino, fh) {
                Ok(flags) => reply.ioctl(0, &flags.to_le_bytes()),
                Err(e) => fail(reply, e),
            },
            ioctl::FS_IOC_SETFLAGS if in_data.len() >= 4 => {
                let flags = u32::from_le_bytes([in_data[0], in_data[1], in_data[2], in_data[3]]);
                match self.fs.set_flags(fh, flags) {
                    Ok(()) => reply.ioctl(0, &[]),
                    Err(e) => fail(reply, e),
                }
            }
            ioctl::FS_IOC_FSGETXATTR => match self.fs.get_fsxattr(fh) {
                Ok(attr) if attr.len() <= out_size as usize => reply.ioctl(0, &attr),
                Ok(_) => fail(reply, Error::Overflow),
                Err(e) => fail(reply, e),
            },
            ioctl::FS_IOC_FSSETXATTR if in_data.len() >= crate::sys::FSXATTR_SIZE => {
                let mut attr = [0u8; crate::sys::FSXATTR_SIZE];
                attr.copy_from_slice(&in_data[..crate::sys::FSXATTR_SIZE]);
                match self.fs.set_fsxattr(fh, &attr) {
                    Ok(()) => reply.ioctl(0, &[]),
                    Err(e) => fail(reply, e),
                }
            }
            // The output buffer cannot be written through FUSE: use
            // `fsverity-fuse dump-metadata` instead.
            _ => fail(reply, Error::NotTty),
        }
    }
}

/// Entries of a listing looked up at once for readdirplus (a reply to a 32 KiB
/// getdents holds about 200; those of a batch that do not fit are forgotten).
const READDIRPLUS_BATCH: usize = 64;

fn open_flags(o: &Opened) -> FopenFlags {
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

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_AUTO_INVAL_DATA
            | InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_ASYNC_DIO
            // The kernel then enforces POSIX ACLs (system.posix_acl_* pass
            // through) along with the mode bits: access through the mount is
            // never wider than direct access.
            | InitFlags::FUSE_POSIX_ACL;
        let supported = wanted & config.capabilities();
        let _ = config.add_capabilities(supported);
        let _ = config.set_max_write(1 << 20);
        let _ = config
            .set_max_readahead(1 << 20)
            .or_else(|max| config.set_max_readahead(max));
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        guarded("lookup", || {
            self.entry(reply, "lookup", self.fs.lookup(parent.0, name))
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        guarded("forget", || self.fs.forget(ino.0, nlookup));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        guarded("getattr", || {
            self.attr(reply, "getattr", self.fs.getattr(ino.0))
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        guarded("setattr", || {
            let change = SetAttr {
                mode,
                uid,
                gid,
                size,
                atime: set_time(atime),
                mtime: set_time(mtime),
                fh: fh.map(|f| f.0),
            };
            self.attr(reply, "setattr", self.fs.setattr(ino.0, change))
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        guarded("readlink", || match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        guarded("mknod", || {
            self.entry(
                reply,
                "mknod",
                self.fs.mknod(parent.0, name, mode, rdev, caller(req)),
            )
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        guarded("mkdir", || {
            self.entry(
                reply,
                "mkdir",
                self.fs.mkdir(parent.0, name, mode, caller(req)),
            )
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        guarded("unlink", || {
            Self::empty(reply, "unlink", self.fs.unlink(parent.0, name))
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        guarded("rmdir", || {
            Self::empty(reply, "rmdir", self.fs.rmdir(parent.0, name))
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        guarded("symlink", || {
            self.entry(
                reply,
                "symlink",
                self.fs.symlink(parent.0, link_name, target, caller(req)),
            )
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        guarded("rename", || {
            let r = self
                .fs
                .rename(parent.0, name, newparent.0, newname, flags.bits());
            Self::empty(reply, "rename", r)
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        guarded("link", || {
            self.entry(reply, "link", self.fs.link(ino.0, newparent.0, newname))
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        guarded("open", || match self.fs.open(ino.0, flags.0, caller(req)) {
            Ok(o) => reply.opened(FileHandle(o.fh), open_flags(&o)),
            Err(e) => {
                log_err("open", &e);
                reply.error(errno(&e))
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        guarded("read", || match self.fs.read(fh.0, offset, size) {
            Ok(data) => reply.data(data.as_slice()),
            Err(e) => {
                log_err("read", &e);
                reply.error(errno(&e))
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        guarded("write", || match self.fs.write(fh.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => {
                log_err("write", &e);
                reply.error(errno(&e))
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        guarded("flush", || Self::empty(reply, "flush", self.fs.flush(fh.0)));
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        guarded("release", || {
            Self::empty(reply, "release", self.fs.release(fh.0))
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        guarded("fsync", || {
            Self::empty(reply, "fsync", self.fs.fsync(fh.0, datasync))
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        guarded("opendir", || match self.fs.opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        guarded("readdir", || match self.fs.readdir(fh.0, offset) {
            Ok(snapshot) => {
                for (i, e) in snapshot.entries.iter().enumerate().skip(offset as usize) {
                    if reply.add(
                        INodeNo(e.ino.max(1)),
                        i as u64 + 1,
                        dir_entry_type(e.kind),
                        &e.name,
                    ) {
                        break;
                    }
                }
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        guarded("readdirplus", || match self.fs.readdir(fh.0, offset) {
            Ok(snapshot) => {
                // Entries are looked up a batch at a time, in parallel; the
                // references of those that do not fit the reply are dropped.
                let entries = snapshot.entries.get(offset as usize..).unwrap_or_default();
                let mut index = offset;
                'batches: for batch in entries.chunks(READDIRPLUS_BATCH) {
                    let attrs = self.fs.readdirplus_entries(fh.0, batch);
                    let mut looked_up = batch.iter().zip(attrs);
                    for (e, attr) in &mut looked_up {
                        index += 1;
                        // An entry removed since the snapshot is skipped.
                        let Ok(attr) = attr else {
                            continue;
                        };
                        let full = reply.add(
                            INodeNo(attr.ino),
                            index,
                            &e.name,
                            &self.ttl.entry,
                            &file_attr(&attr),
                            Generation(0),
                        );
                        if full {
                            let unused = std::iter::once((e, Ok(attr))).chain(looked_up);
                            for (e, attr) in unused {
                                if let (false, Ok(attr)) = (e.is_dot(), attr) {
                                    self.fs.forget(attr.ino, 1);
                                }
                            }
                            break 'batches;
                        }
                    }
                }
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        guarded("releasedir", || {
            Self::empty(reply, "releasedir", self.fs.releasedir(fh.0))
        });
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        guarded("fsyncdir", || {
            Self::empty(reply, "fsyncdir", self.fs.fsync(fh.0, datasync))
        });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        guarded("statfs", || match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            ),
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        guarded("setxattr", || {
            Self::empty(
                reply,
                "setxattr",
                self.fs.setxattr(ino.0, name, value, flags),
            )
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        guarded("getxattr", || {
            Self::xattr(reply, "getxattr", self.fs.getxattr(ino.0, name, size))
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        guarded("listxattr", || {
            Self::xattr(reply, "listxattr", self.fs.listxattr(ino.0, size))
        });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        guarded("removexattr", || {
            Self::empty(reply, "removexattr", self.fs.removexattr(ino.0, name))
        });
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // The mount uses default_permissions: the kernel checks access itself.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        guarded("create", || {
            match self.fs.create(parent.0, name, mode, flags, caller(req)) {
                Ok((attr, o)) => reply.created(
                    &self.ttl.entry,
                    &file_attr(&attr),
                    Generation(0),
                    FileHandle(o.fh),
                    open_flags(&o),
                ),
                Err(e) => {
                    log_err("create", &e);
                    reply.error(errno(&e))
                }
            }
        });
    }

    fn ioctl(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        guarded("ioctl", || {
            self.ioctl(req, ino.0, fh.0, cmd, in_data, out_size, reply)
        });
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        guarded("fallocate", || {
            Self::empty(
                reply,
                "fallocate",
                self.fs.fallocate(fh.0, offset, length, mode),
            )
        });
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        guarded("lseek", || match self.fs.lseek(fh.0, offset, whence) {
            Ok(pos) => reply.offset(pos),
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        guarded("copy_file_range", || {
            match self
                .fs
                .copy_file_range(fh_in.0, offset_in, fh_out.0, offset_out, len)
            {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }
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
}
