//! The thin fuser adapter: turns kernel requests into calls of [`VerityFs`]
//! and results into replies. No filesystem logic, no threads: every handler is
//! `answer(op, reply, result, on_ok)`, which logs and counts a failure and
//! replies its errno (from the one table in `crate::error`), and catches a
//! panic (the dropped reply answers EIO; the event-loop thread goes on).
//! Conversions of attributes and times are in `convert`.

mod convert;

use std::ffi::OsStr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, Generation, INodeNo, InitFlags,
    IoctlFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLseek, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::error::Result;
use crate::fs::{Opened, OpenedDir, VerityFs};
use crate::ioctl::{self, IoctlRequest};
use crate::namespace::{Attr, Caller, SetAttr, XattrReply};
use convert::{file_attr, file_type, open_flags, set_time};

/// How long the kernel may cache attributes and entries.
#[derive(Clone, Copy, Debug)]
pub struct Ttls {
    /// Attribute cache lifetime.
    pub attr: Duration,
    /// Directory entry cache lifetime.
    pub entry: Duration,
    /// Attribute cache lifetime of verity files: immutable through the mount
    /// (their size and data cannot change, and verity is sticky while
    /// mounted), so they may be cached longer; changes made through the mount
    /// update the kernel's cache at once, changes in the backing directory
    /// show after this. Their entries keep `entry`: a file replaced in the
    /// backing directory (a new file renamed over it) shows as soon as for
    /// plain files.
    pub verity: Duration,
}

impl Ttls {
    /// (attribute, entry) lifetimes for a node with attributes `a`.
    fn of(&self, a: &Attr) -> (Duration, Duration) {
        match a.verity {
            true => (self.verity, self.entry),
            false => (self.attr, self.entry),
        }
    }
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            attr: Duration::from_secs(1),
            entry: Duration::from_secs(1),
            verity: Duration::from_secs(30),
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

/// The reply types' common `error`.
trait ErrorReply {
    fn fail(self, errno: Errno);
}

macro_rules! error_reply {
    ($($t:ty),*) => {$(impl ErrorReply for $t {
        fn fail(self, errno: Errno) {
            self.error(errno)
        }
    })*};
}
error_reply!(
    ReplyEmpty,
    ReplyData,
    ReplyEntry,
    ReplyAttr,
    ReplyOpen,
    ReplyWrite,
    ReplyStatfs,
    ReplyCreate,
    ReplyXattr,
    ReplyIoctl,
    ReplyLseek,
    ReplyDirectory,
    ReplyDirectoryPlus
);

/// Runs `call` (which may fill the reply, as readdir does) and answers with
/// its result: `on_ok` replies a success; a failure is logged, counted and
/// answered with its errno. A panic drops the reply, which answers EIO.
fn answer<R: ErrorReply, T>(
    fs: &VerityFs, op: &'static str, mut reply: R, call: impl FnOnce(&mut R) -> Result<T>,
    on_ok: impl FnOnce(R, T),
) {
    let run = catch_unwind(AssertUnwindSafe(move || match call(&mut reply) {
        Ok(value) => on_ok(reply, value),
        Err(e) => {
            fs.note_failure(op, &e);
            reply.fail(Errno::from_i32(e.errno()));
        }
    }));
    if run.is_err() {
        tracing::error!(op, "request handler panicked; replied EIO");
    }
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

fn xattr(reply: ReplyXattr, x: XattrReply) {
    match x {
        XattrReply::Size(n) => reply.size(n),
        XattrReply::Data(d) => reply.data(&d),
    }
}

/// The successful replies, by kind.
fn ok(r: ReplyEmpty, (): ()) {
    r.ok()
}

fn data(r: ReplyData, bytes: impl AsRef<[u8]>) {
    r.data(bytes.as_ref())
}

fn written(r: ReplyWrite, n: u32) {
    r.written(n)
}

fn opened(r: ReplyOpen, o: Opened) {
    r.opened(FileHandle(o.fh), open_flags(&o))
}

fn ioctl_out(r: ReplyIoctl, out: Vec<u8>) {
    r.ioctl(0, &out)
}

impl FuseAdapter {
    /// [`answer`] with this adapter's filesystem.
    fn answer<R: ErrorReply, T>(
        &self, op: &'static str, reply: R, call: impl FnOnce(&mut R) -> Result<T>,
        on_ok: impl FnOnce(R, T),
    ) {
        answer(&self.fs, op, reply, call, on_ok)
    }

    fn entry(&self, op: &'static str, reply: ReplyEntry, call: impl FnOnce() -> Result<Attr>) {
        let ttl = self.ttl;
        self.answer(
            op,
            reply,
            |_| call(),
            |r, a| {
                let (attr_ttl, entry_ttl) = ttl.of(&a);
                r.entry_with_ttls(&attr_ttl, &entry_ttl, &file_attr(&a), Generation(0))
            },
        );
    }

    fn attr(&self, op: &'static str, reply: ReplyAttr, call: impl FnOnce() -> Result<Attr>) {
        let ttl = self.ttl;
        self.answer(
            op,
            reply,
            |_| call(),
            |r, a| r.attr(&ttl.of(&a).0, &file_attr(&a)),
        );
    }
}

impl Filesystem for FuseAdapter {
    fn init(&mut self, _: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // READDIRPLUS_AUTO: the kernel asks for attributes with a listing
        // only when they are being used (a backing directory's lookups cost
        // an inode and an xattr read each). An image's lookups are in memory:
        // always readdirplus, so `find -ls` needs no lookup per entry.
        let auto = match self.fs.is_immutable() {
            true => InitFlags::empty(),
            false => InitFlags::FUSE_READDIRPLUS_AUTO,
        };
        let wanted = InitFlags::FUSE_DO_READDIRPLUS
            | auto
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

    fn lookup(&self, _: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry("lookup", reply, || self.fs.lookup(parent.0, name));
    }

    fn forget(&self, _: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _: &Request, ino: INodeNo, _: Option<FileHandle>, reply: ReplyAttr) {
        self.attr("getattr", reply, || self.fs.getattr(ino.0));
    }

    fn setattr(
        &self, _: &Request, ino: INodeNo, mode: Option<u32>, uid: Option<u32>, gid: Option<u32>,
        size: Option<u64>, atime: Option<TimeOrNow>, mtime: Option<TimeOrNow>,
        _: Option<SystemTime>, fh: Option<FileHandle>, _: Option<SystemTime>,
        _: Option<SystemTime>, _: Option<SystemTime>, _: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let (atime, mtime, fh) = (set_time(atime), set_time(mtime), fh.map(|f| f.0));
        let change = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            fh,
        };
        self.attr("setattr", reply, || self.fs.setattr(ino.0, change));
    }

    fn readlink(&self, _: &Request, ino: INodeNo, reply: ReplyData) {
        self.answer("readlink", reply, |_| self.fs.readlink(ino.0), data);
    }

    fn mknod(
        &self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, _: u32, rdev: u32,
        reply: ReplyEntry,
    ) {
        let who = caller(req);
        self.entry("mknod", reply, || {
            self.fs.mknod(parent.0, name, mode, rdev, who)
        });
    }

    fn mkdir(
        &self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, _: u32, reply: ReplyEntry,
    ) {
        let who = caller(req);
        self.entry("mkdir", reply, || self.fs.mkdir(parent.0, name, mode, who));
    }

    fn unlink(&self, _: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.answer("unlink", reply, |_| self.fs.unlink(parent.0, name), ok);
    }

    fn rmdir(&self, _: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.answer("rmdir", reply, |_| self.fs.rmdir(parent.0, name), ok);
    }

    fn symlink(
        &self, req: &Request, parent: INodeNo, name: &OsStr, target: &Path, reply: ReplyEntry,
    ) {
        let who = caller(req);
        self.entry("symlink", reply, || {
            self.fs.symlink(parent.0, name, target, who)
        });
    }

    fn rename(
        &self, _: &Request, parent: INodeNo, name: &OsStr, newparent: INodeNo, newname: &OsStr,
        flags: RenameFlags, reply: ReplyEmpty,
    ) {
        let (from, to, flags) = (parent.0, newparent.0, flags.bits());
        self.answer(
            "rename",
            reply,
            |_| self.fs.rename(from, name, to, newname, flags),
            ok,
        );
    }

    fn link(
        &self, _: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry,
    ) {
        self.entry("link", reply, || self.fs.link(ino.0, newparent.0, newname));
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        // Answered at once, or from the filesystem's workers when the open
        // must rebuild a Merkle tree.
        let fs = self.fs.clone();
        let done = move |result| answer(&fs, "open", reply, |_| result, opened);
        self.fs.open_then(ino.0, flags.0, caller(req), done);
    }

    fn read(
        &self, _: &Request, _: INodeNo, fh: FileHandle, offset: u64, size: u32, _: OpenFlags,
        _: Option<LockOwner>, reply: ReplyData,
    ) {
        let read = |_: &mut ReplyData| self.fs.read(fh.0, offset, size);
        self.answer("read", reply, read, |r, d| r.data(d.as_slice()));
    }

    fn write(
        &self, _: &Request, _: INodeNo, fh: FileHandle, offset: u64, bytes: &[u8], _: WriteFlags,
        _: OpenFlags, _: Option<LockOwner>, reply: ReplyWrite,
    ) {
        self.answer(
            "write",
            reply,
            |_| self.fs.write(fh.0, offset, bytes),
            written,
        );
    }

    fn flush(&self, _: &Request, _: INodeNo, fh: FileHandle, _: LockOwner, reply: ReplyEmpty) {
        self.answer("flush", reply, |_| self.fs.flush(fh.0), ok);
    }

    fn release(
        &self, _: &Request, _: INodeNo, fh: FileHandle, _: OpenFlags, _: Option<LockOwner>,
        _: bool, reply: ReplyEmpty,
    ) {
        self.answer("release", reply, |_| self.fs.release(fh.0), ok);
    }

    fn fsync(&self, _: &Request, _: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        self.answer("fsync", reply, |_| self.fs.fsync(fh.0, datasync), ok);
    }

    fn opendir(&self, _: &Request, ino: INodeNo, _: OpenFlags, reply: ReplyOpen) {
        let done =
            |r: ReplyOpen, d: OpenedDir| r.opened(FileHandle(d.fh), convert::opendir_flags(d));
        self.answer("opendir", reply, |_| self.fs.opendir(ino.0), done);
    }

    fn readdir(&self, _: &Request, _: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        let fill = |r: &mut ReplyDirectory| {
            let entries = self.fs.readdir(fh.0, offset)?;
            for (i, e) in entries.iter().enumerate().skip(offset as usize) {
                if r.add(
                    INodeNo(e.ino.max(1)),
                    i as u64 + 1,
                    file_type(e.kind),
                    &e.name,
                ) {
                    break;
                }
            }
            Ok(())
        };
        self.answer("readdir", reply, fill, |r, ()| r.ok());
    }

    fn readdirplus(
        &self, _: &Request, _: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectoryPlus,
    ) {
        let ttl = self.ttl;
        let fill = |r: &mut ReplyDirectoryPlus| {
            self.fs.readdirplus(fh.0, offset, |e, a, next| {
                r.add(
                    INodeNo(a.ino),
                    next,
                    &e.name,
                    &ttl.of(a).1,
                    &file_attr(a),
                    Generation(0),
                )
            })
        };
        self.answer("readdirplus", reply, fill, |r, ()| r.ok());
    }

    fn releasedir(&self, _: &Request, _: INodeNo, fh: FileHandle, _: OpenFlags, reply: ReplyEmpty) {
        self.answer("releasedir", reply, |_| self.fs.releasedir(fh.0), ok);
    }

    fn fsyncdir(&self, _: &Request, _: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        self.answer("fsyncdir", reply, |_| self.fs.fsync(fh.0, datasync), ok);
    }

    fn statfs(&self, _: &Request, _: INodeNo, reply: ReplyStatfs) {
        self.answer(
            "statfs",
            reply,
            |_| self.fs.statfs(),
            |r, s| {
                r.statfs(
                    s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
                )
            },
        );
    }

    fn setxattr(
        &self, _: &Request, ino: INodeNo, name: &OsStr, value: &[u8], flags: i32, _: u32,
        reply: ReplyEmpty,
    ) {
        self.answer(
            "setxattr",
            reply,
            |_| self.fs.setxattr(ino.0, name, value, flags),
            ok,
        );
    }

    fn getxattr(&self, _: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.answer(
            "getxattr",
            reply,
            |_| self.fs.getxattr(ino.0, name, size),
            xattr,
        );
    }

    fn listxattr(&self, _: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.answer(
            "listxattr",
            reply,
            |_| self.fs.listxattr(ino.0, size),
            xattr,
        );
    }

    fn removexattr(&self, _: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.answer(
            "removexattr",
            reply,
            |_| self.fs.removexattr(ino.0, name),
            ok,
        );
    }

    fn access(&self, _: &Request, _: INodeNo, _: AccessFlags, reply: ReplyEmpty) {
        // The mount uses default_permissions: the kernel checks access itself.
        reply.ok();
    }

    fn create(
        &self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, _: u32, flags: i32,
        reply: ReplyCreate,
    ) {
        let (who, ttl) = (caller(req), self.ttl.entry);
        let create = |_: &mut ReplyCreate| self.fs.create(parent.0, name, mode, flags, who);
        self.answer("create", reply, create, |r, (a, o)| {
            r.created(
                &ttl,
                &file_attr(&a),
                Generation(0),
                FileHandle(o.fh),
                open_flags(&o),
            )
        });
    }

    fn ioctl(
        &self, req: &Request, ino: INodeNo, fh: FileHandle, _: IoctlFlags, cmd: u32,
        in_data: &[u8], out_size: u32, reply: ReplyIoctl,
    ) {
        match ioctl::decode(cmd, in_data, out_size) {
            // Runs on the filesystem's enable workers, and is answered from there.
            Ok(IoctlRequest::Enable(request)) => {
                let fs = self.fs.clone();
                let done =
                    move |result| answer(&fs, "ioctl", reply, |_| result, |r, ()| ok_ioctl(r));
                self.fs
                    .enable_verity_later(ino.0, fh.0, request, caller(req), done);
            }
            decoded => {
                let call = |_: &mut ReplyIoctl| self.fs.ioctl(ino.0, fh.0, decoded?);
                self.answer("ioctl", reply, call, ioctl_out);
            }
        }
    }

    fn fallocate(
        &self, _: &Request, _: INodeNo, fh: FileHandle, offset: u64, length: u64, mode: i32,
        reply: ReplyEmpty,
    ) {
        self.answer(
            "fallocate",
            reply,
            |_| self.fs.fallocate(fh.0, offset, length, mode),
            ok,
        );
    }

    fn lseek(
        &self, _: &Request, _: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek,
    ) {
        let seek = |_: &mut ReplyLseek| self.fs.lseek(fh.0, offset, whence);
        self.answer("lseek", reply, seek, |r, pos| r.offset(pos));
    }

    fn copy_file_range(
        &self, _: &Request, _: INodeNo, fh_in: FileHandle, off_in: u64, _: INodeNo,
        fh_out: FileHandle, off_out: u64, len: u64, _: CopyFileRangeFlags, reply: ReplyWrite,
    ) {
        let copy = |_: &mut ReplyWrite| {
            self.fs
                .copy_file_range(fh_in.0, off_in, fh_out.0, off_out, len)
        };
        self.answer("copy_file_range", reply, copy, written);
    }
}

fn ok_ioctl(r: ReplyIoctl) {
    r.ioctl(0, &[])
}
