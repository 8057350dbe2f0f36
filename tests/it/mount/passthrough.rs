//! Everything that is not a verity file passes through: each operation is done
//! both through the mount and directly in a plain directory on the backing
//! filesystem, and the two must give the same results, errors included, and end
//! in the same tree.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{FallocateFlags, FlockOperation, RenameFlags, SeekFrom, XattrFlags};

use super::harness::{Scratch, require_fuse};
use super::support::{data, errno};

/// The same operation on the mount and on a reference directory.
struct Twin {
    mnt: PathBuf,
    reference: PathBuf,
}

impl Twin {
    /// Runs `op` on both roots, asserts equal outcomes (values or errno), returns it.
    #[track_caller]
    fn same<T: PartialEq + Debug>(
        &self, what: &str, op: impl Fn(&Path) -> io::Result<T>,
    ) -> Result<T, i32> {
        let a = op(&self.mnt).map_err(|e| errno(&e));
        let b = op(&self.reference).map_err(|e| errno(&e));
        assert_eq!(
            a, b,
            "{what}: through the mount (left) vs plain directory (right)"
        );
        a
    }

    /// Like [`Twin::same`], and the operation must succeed.
    #[track_caller]
    fn ok<T: PartialEq + Debug>(&self, what: &str, op: impl Fn(&Path) -> io::Result<T>) -> T {
        match self.same(what, op) {
            Ok(v) => v,
            Err(e) => panic!("{what} failed on both sides: errno {e}"),
        }
    }

    /// Like [`Twin::same`], and the operation must fail with `expected`.
    #[track_caller]
    fn fails<T: PartialEq + Debug>(
        &self, what: &str, expected: i32, op: impl Fn(&Path) -> io::Result<T>,
    ) {
        let got = self.same(what, op);
        assert_eq!(
            got.err(),
            Some(expected),
            "{what}: expected errno {expected}"
        );
    }
}

fn rustix_err<T>(r: rustix::io::Result<T>) -> io::Result<T> {
    r.map_err(io::Error::from)
}

/// Type, permissions, size, links and owner of a path (not following symlinks).
fn shape(p: &Path) -> io::Result<(u32, u64, u64, u32, u32)> {
    let m = fs::symlink_metadata(p)?;
    Ok((m.mode(), m.len(), m.nlink(), m.uid(), m.gid()))
}

fn xattrs(p: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut names = vec![0u8; 4096];
    let n = rustix_err(rustix::fs::listxattr(p, &mut names[..]))?;
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if !name.starts_with("user.") {
            continue;
        }
        let mut value = vec![0u8; 4096];
        let len = rustix_err(rustix::fs::getxattr(p, name.as_str(), &mut value[..]))?;
        value.truncate(len);
        out.push((name, value));
    }
    out.sort();
    Ok(out)
}

/// One entry of a directory tree as far as a passthrough must preserve it.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    mode: u32,
    size: u64,
    nlink: u64,
    owner: (u32, u32),
    mtime: Option<(i64, i64)>,
    body: Vec<u8>,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Every entry under `root` by relative path. Without `times`, timestamps are
/// left out (they differ between two trees built one after the other).
fn snapshot(root: &Path, times: bool) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).expect("readdir") {
            let path = e.expect("entry").path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            if rel == ".fsverity-fuse" {
                continue;
            }
            let m = fs::symlink_metadata(&path).expect("lstat");
            let ft = m.file_type();
            let body = if ft.is_symlink() {
                fs::read_link(&path)
                    .expect("readlink")
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            } else if ft.is_file() {
                fs::read(&path).expect("read")
            } else {
                Vec::new()
            };
            if ft.is_dir() {
                todo.push(path.clone());
            }
            let xattrs = if ft.is_file() || ft.is_dir() {
                xattrs(&path).expect("xattrs")
            } else {
                Vec::new()
            };
            out.insert(
                rel,
                Entry {
                    mode: m.mode(),
                    size: if ft.is_dir() { 0 } else { m.len() },
                    nlink: m.nlink(),
                    owner: (m.uid(), m.gid()),
                    mtime: times.then(|| (m.mtime(), m.mtime_nsec())),
                    body,
                    xattrs,
                },
            );
        }
    }
    out
}

#[test]
fn the_mount_behaves_like_the_backing_filesystem() {
    require_fuse!();
    let s = Scratch::new();
    let reference = s.dir.path().join("reference");
    fs::create_dir(&reference).expect("mkdir reference");
    let m = s.mount(&[]);
    let t = Twin {
        mnt: m.p(""),
        reference,
    };

    // Regular files: create, write, read, append, write past the end, truncate.
    t.ok("create", |r| fs::write(r.join("f"), b"hello world"));
    t.ok("read", |r| fs::read(r.join("f")));
    t.ok("append", |r| {
        OpenOptions::new()
            .append(true)
            .open(r.join("f"))?
            .write_all(b", appended")
    });
    t.ok("read after append", |r| fs::read(r.join("f")));
    t.ok("write past the end", |r| {
        OpenOptions::new()
            .write(true)
            .open(r.join("f"))?
            .write_all_at(b"tail", 10_000)
    });
    t.ok("read with a gap", |r| fs::read(r.join("f")));
    t.ok("shrink", |r| {
        OpenOptions::new().write(true).open(r.join("f"))?.set_len(5)
    });
    t.ok("extend", |r| {
        OpenOptions::new()
            .write(true)
            .open(r.join("f"))?
            .set_len(3000)
    });
    t.ok("read after truncates", |r| fs::read(r.join("f")));
    t.ok("O_TRUNC", |r| {
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(r.join("f"))
            .map(drop)
    });
    t.ok("shape after O_TRUNC", |r| shape(&r.join("f")));
    t.ok("rewrite", |r| fs::write(r.join("f"), data(200_000, 1)));
    t.ok("read and write the same descriptor", |r| {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(r.join("f"))?;
        f.write_all_at(b"middle", 100_000)?;
        let mut back = Vec::new();
        f.read_to_end(&mut back)?;
        Ok(back)
    });
    t.fails("O_EXCL on an existing file", libc::EEXIST, |r| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(r.join("f"))
            .map(drop)
    });
    t.fails("open a missing file", libc::ENOENT, |r| {
        File::open(r.join("missing")).map(drop)
    });
    t.ok("create mode 0600", |r| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(r.join("private"))?;
        shape(&r.join("private"))
    });

    // Directories.
    t.ok("mkdir", |r| fs::create_dir(r.join("d")));
    t.ok("mkdir nested", |r| fs::create_dir(r.join("d/e")));
    t.fails("mkdir existing", libc::EEXIST, |r| {
        fs::create_dir(r.join("d"))
    });
    t.fails("rmdir non-empty", libc::ENOTEMPTY, |r| {
        fs::remove_dir(r.join("d"))
    });
    t.fails("rmdir a file", libc::ENOTDIR, |r| {
        fs::remove_dir(r.join("f"))
    });
    t.ok("rmdir", |r| fs::remove_dir(r.join("d/e")));
    t.ok("listing", |r| {
        let mut names: Vec<_> = fs::read_dir(r)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        Ok(names)
    });
    // A directory too large for one readdir reply, listed in order and again
    // after a rewind.
    t.ok("large directory", |r| {
        fs::create_dir(r.join("many"))?;
        for i in 0..600 {
            fs::write(r.join(format!("many/entry-with-a-longish-name-{i:04}")), [])?;
        }
        let list = || -> io::Result<Vec<_>> {
            let mut names: Vec<_> = fs::read_dir(r.join("many"))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<_>>()?;
            names.sort();
            Ok(names)
        };
        let first = list()?;
        for i in (0..600).step_by(3) {
            fs::remove_file(r.join(format!("many/entry-with-a-longish-name-{i:04}")))?;
        }
        Ok((first, list()?))
    });

    // Unlink.
    t.fails("unlink missing", libc::ENOENT, |r| {
        fs::remove_file(r.join("missing"))
    });
    t.fails("unlink a directory", libc::EISDIR, |r| {
        fs::remove_file(r.join("d"))
    });
    t.ok("unlink", |r| fs::remove_file(r.join("private")));

    // Rename, plain and with flags.
    t.ok("rename into a directory", |r| {
        fs::rename(r.join("f"), r.join("d/g"))
    });
    t.ok("rename over a file", |r| {
        fs::write(r.join("x"), b"x wins")?;
        fs::rename(r.join("x"), r.join("d/g"))?;
        fs::read(r.join("d/g"))
    });
    t.ok("dirs for rename", |r| {
        fs::create_dir(r.join("a"))?;
        fs::create_dir(r.join("b"))?;
        fs::write(r.join("b/z"), b"z")
    });
    t.fails("rename over a non-empty directory", libc::ENOTEMPTY, |r| {
        fs::rename(r.join("a"), r.join("b"))
    });
    t.ok("rename over an empty directory", |r| {
        fs::rename(r.join("b"), r.join("a"))
    });
    t.fails("rename a directory into itself", libc::EINVAL, |r| {
        fs::rename(r.join("a"), r.join("a/inner"))
    });
    t.fails("rename a file over a directory", libc::EISDIR, |r| {
        fs::rename(r.join("d/g"), r.join("a"))
    });
    let renameat2 = |from: &'static str, to: &'static str, flags: RenameFlags| {
        move |r: &Path| {
            rustix_err(rustix::fs::renameat_with(
                rustix::fs::CWD,
                r.join(from),
                rustix::fs::CWD,
                r.join(to),
                flags,
            ))
        }
    };
    t.ok("files to swap", |r| {
        fs::write(r.join("p"), b"pppp")?;
        fs::write(r.join("q"), b"q")
    });
    t.fails(
        "RENAME_NOREPLACE onto an existing name",
        libc::EEXIST,
        renameat2("p", "q", RenameFlags::NOREPLACE),
    );
    t.ok(
        "RENAME_NOREPLACE onto a new name",
        renameat2("p", "p2", RenameFlags::NOREPLACE),
    );
    t.ok(
        "RENAME_EXCHANGE",
        renameat2("p2", "q", RenameFlags::EXCHANGE),
    );
    t.ok("after RENAME_EXCHANGE", |r| {
        Ok((fs::read(r.join("p2"))?, fs::read(r.join("q"))?))
    });
    t.ok(
        "RENAME_EXCHANGE a file and a directory",
        renameat2("q", "a", RenameFlags::EXCHANGE),
    );
    t.ok("after exchanging types", |r| {
        Ok((
            shape(&r.join("q"))?.0 & libc::S_IFMT,
            fs::read(r.join("a"))?,
        ))
    });
    t.fails(
        "RENAME_EXCHANGE with a missing name",
        libc::ENOENT,
        renameat2("p2", "nothing", RenameFlags::EXCHANGE),
    );
    t.fails(
        "RENAME_NOREPLACE|RENAME_EXCHANGE",
        libc::EINVAL,
        renameat2("p2", "a", RenameFlags::NOREPLACE | RenameFlags::EXCHANGE),
    );

    // Symlinks.
    t.ok("symlink", |r| {
        std::os::unix::fs::symlink("d/g", r.join("l"))
    });
    t.ok("dangling symlink", |r| {
        std::os::unix::fs::symlink("/nonexistent/x", r.join("dangling"))
    });
    t.ok("readlink", |r| {
        Ok((
            fs::read_link(r.join("l"))?,
            fs::read_link(r.join("dangling"))?,
        ))
    });
    t.ok("read through a symlink", |r| fs::read(r.join("l")));
    t.fails("open a dangling symlink", libc::ENOENT, |r| {
        File::open(r.join("dangling")).map(drop)
    });
    t.fails("symlink onto an existing name", libc::EEXIST, |r| {
        std::os::unix::fs::symlink("t", r.join("l"))
    });
    t.fails("readlink of a file", libc::EINVAL, |r| {
        fs::read_link(r.join("d/g"))
    });
    t.ok("lstat of a symlink", |r| shape(&r.join("l")));

    // Hard links share the inode.
    t.ok("link", |r| fs::hard_link(r.join("d/g"), r.join("h")));
    t.ok("both names, one inode", |r| {
        let (g, h) = (fs::metadata(r.join("d/g"))?, fs::metadata(r.join("h"))?);
        Ok((g.ino() == h.ino(), g.nlink(), h.nlink()))
    });
    t.ok("write through one name, read the other", |r| {
        OpenOptions::new()
            .append(true)
            .open(r.join("h"))?
            .write_all(b"+h")?;
        fs::read(r.join("d/g"))
    });
    t.fails("link a directory", libc::EPERM, |r| {
        fs::hard_link(r.join("d"), r.join("dlink"))
    });
    t.fails("link onto an existing name", libc::EEXIST, |r| {
        fs::hard_link(r.join("h"), r.join("q"))
    });

    // FIFO (opened and used by the kernel alone).
    t.ok("mkfifo", |r| {
        rustix_err(rustix::fs::mknodat(
            rustix::fs::CWD,
            r.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o640),
            0,
        ))
    });
    t.ok("fifo shape", |r| shape(&r.join("fifo")));
    t.ok("fifo carries bytes", |r| {
        let mut rd = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(r.join("fifo"))?;
        OpenOptions::new()
            .write(true)
            .open(r.join("fifo"))?
            .write_all(b"through the pipe")?;
        let mut buf = [0u8; 64];
        let n = rd.read(&mut buf)?;
        Ok(buf[..n].to_vec())
    });

    // Extended attributes.
    let set = |name: &'static str, value: &'static [u8], flags: XattrFlags| {
        move |r: &Path| rustix_err(rustix::fs::setxattr(r.join("h"), name, value, flags))
    };
    t.ok("setxattr", set("user.a", b"1", XattrFlags::empty()));
    t.ok(
        "setxattr another",
        set("user.b", b"twenty-two", XattrFlags::empty()),
    );
    t.ok(
        "setxattr empty value",
        set("user.empty", b"", XattrFlags::empty()),
    );
    t.fails(
        "XATTR_CREATE on an existing name",
        libc::EEXIST,
        set("user.a", b"2", XattrFlags::CREATE),
    );
    t.fails(
        "XATTR_REPLACE on a missing name",
        libc::ENODATA,
        set("user.zz", b"2", XattrFlags::REPLACE),
    );
    t.ok("XATTR_REPLACE", set("user.a", b"one", XattrFlags::REPLACE));
    t.ok("getxattr and listxattr", |r| xattrs(&r.join("h")));
    t.fails("getxattr missing", libc::ENODATA, |r| {
        rustix_err(rustix::fs::getxattr(
            r.join("h"),
            "user.zz",
            &mut [0u8; 16][..],
        ))
    });
    t.fails("getxattr too small a buffer", libc::ERANGE, |r| {
        rustix_err(rustix::fs::getxattr(
            r.join("h"),
            "user.b",
            &mut [0u8; 3][..],
        ))
    });
    t.ok("getxattr size query", |r| {
        rustix_err(rustix::fs::getxattr_query(r.join("h"), "user.b"))
    });
    t.ok("removexattr", |r| {
        rustix_err(rustix::fs::removexattr(r.join("h"), "user.a"))
    });
    t.fails("removexattr missing", libc::ENODATA, |r| {
        rustix_err(rustix::fs::removexattr(r.join("h"), "user.a"))
    });
    t.ok("xattr on a directory", |r| {
        rustix_err(rustix::fs::setxattr(
            r.join("d"),
            "user.dir",
            b"v",
            XattrFlags::empty(),
        ))?;
        xattrs(&r.join("d"))
    });
    t.fails("non-user namespace", libc::EOPNOTSUPP, |r| {
        rustix_err(rustix::fs::setxattr(
            r.join("h"),
            "bogus.x",
            b"v",
            XattrFlags::empty(),
        ))
    });

    // Sparse files: SEEK_DATA and SEEK_HOLE.
    t.ok("sparse file", |r| {
        let f = File::create(r.join("sparse"))?;
        f.set_len(3 << 20)?;
        f.write_all_at(&data(4096, 2), 0)?;
        f.write_all_at(&data(10_000, 3), 1 << 20)?;
        f.sync_all()
    });
    for start in [
        0u64,
        4096,
        8192,
        1 << 20,
        (1 << 20) + 5000,
        (2 << 20) + 1,
        (3 << 20) - 1,
        3 << 20,
        4 << 20,
    ] {
        for whence in [SeekFrom::Data(start), SeekFrom::Hole(start)] {
            let _ = t.same(&format!("lseek {whence:?}"), |r| {
                rustix_err(rustix::fs::seek(&File::open(r.join("sparse"))?, whence))
            });
        }
    }
    t.ok("read a sparse file", |r| fs::read(r.join("sparse")));

    // fallocate on plain files.
    let fa = |mode: FallocateFlags, offset: u64, len: u64| {
        move |r: &Path| {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(r.join("fa"))?;
            rustix_err(rustix::fs::fallocate(&f, mode, offset, len))?;
            let m = f.metadata()?;
            Ok((m.len(), m.blocks()))
        }
    };
    t.ok("fallocate", fa(FallocateFlags::empty(), 0, 1 << 20));
    t.ok(
        "fallocate KEEP_SIZE",
        fa(FallocateFlags::KEEP_SIZE, 1 << 20, 1 << 20),
    );
    t.ok("data in allocated space", |r| {
        OpenOptions::new()
            .write(true)
            .open(r.join("fa"))?
            .write_all_at(&data(20_000, 4), 0)
    });
    t.ok(
        "punch a hole",
        fa(
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            4096,
            8192,
        ),
    );
    t.ok("zero a range", fa(FallocateFlags::ZERO_RANGE, 16_384, 100));
    t.ok("read after fallocate", |r| fs::read(r.join("fa")));
    t.fails("fallocate on a read-only descriptor", libc::EBADF, |r| {
        rustix_err(rustix::fs::fallocate(
            &File::open(r.join("fa"))?,
            FallocateFlags::empty(),
            0,
            1,
        ))
    });

    // copy_file_range between plain files.
    t.ok("copy_file_range", |r| {
        let (src, dst) = (
            File::open(r.join("sparse"))?,
            File::create(r.join("copied"))?,
        );
        let (mut a, mut b) = (1u64 << 20, 7u64);
        let n = rustix_err(rustix::fs::copy_file_range(
            &src,
            Some(&mut a),
            &dst,
            Some(&mut b),
            9000,
        ))?;
        Ok((n, fs::read(r.join("copied"))?))
    });

    // Attributes.
    t.ok("chmod and utimes on a FIFO", |r| {
        fs::set_permissions(r.join("fifo"), fs::Permissions::from_mode(0o600))?;
        let ts = rustix::fs::Timespec {
            tv_sec: 1_500_000_000,
            tv_nsec: 0,
        };
        let times = rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        };
        rustix_err(rustix::fs::utimensat(
            rustix::fs::CWD,
            r.join("fifo"),
            &times,
            rustix::fs::AtFlags::empty(),
        ))?;
        let m = fs::symlink_metadata(r.join("fifo"))?;
        Ok((m.mode(), m.mtime()))
    });
    t.ok("utimes of the access time only", |r| {
        let before = fs::metadata(r.join("sparse"))?;
        let times = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 1_000,
                tv_nsec: 0,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
        };
        rustix_err(rustix::fs::utimensat(
            rustix::fs::CWD,
            r.join("sparse"),
            &times,
            rustix::fs::AtFlags::empty(),
        ))?;
        let after = fs::metadata(r.join("sparse"))?;
        Ok((
            after.atime(),
            (after.mtime(), after.mtime_nsec()) == (before.mtime(), before.mtime_nsec()),
        ))
    });
    t.ok("chmod", |r| {
        fs::set_permissions(r.join("h"), fs::Permissions::from_mode(0o4751))
    });
    t.ok("chown", |r| {
        rustix_err(rustix::fs::chown(
            r.join("h"),
            Some(rustix::fs::Uid::from_raw(4321)),
            Some(rustix::fs::Gid::from_raw(8765)),
        ))
    });
    t.ok("lchown a symlink", |r| {
        rustix_err(rustix::fs::chownat(
            rustix::fs::CWD,
            r.join("l"),
            Some(rustix::fs::Uid::from_raw(77)),
            None,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        ))
    });
    t.ok("utimes", |r| {
        let ts = rustix::fs::Timespec {
            tv_sec: 1_234_567_890,
            tv_nsec: 987_654_321,
        };
        let times = rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        };
        rustix_err(rustix::fs::utimensat(
            rustix::fs::CWD,
            r.join("h"),
            &times,
            rustix::fs::AtFlags::empty(),
        ))?;
        let m = fs::metadata(r.join("h"))?;
        Ok((m.mtime(), m.mtime_nsec(), m.atime(), m.atime_nsec()))
    });
    t.ok("attributes", |r| shape(&r.join("h")));

    // statfs reports the backing filesystem.
    let (a, b) = (
        rustix::fs::statvfs(&t.mnt).expect("statvfs mount"),
        rustix::fs::statvfs(&t.reference).expect("statvfs ref"),
    );
    assert_eq!(
        (a.f_bsize, a.f_frsize, a.f_blocks, a.f_files, a.f_namemax),
        (b.f_bsize, b.f_frsize, b.f_blocks, b.f_files, b.f_namemax)
    );
    assert!(
        a.f_bfree.abs_diff(b.f_bfree) < a.f_blocks / 100,
        "free blocks {} vs {}",
        a.f_bfree,
        b.f_bfree
    );

    // The end state: the same tree on both sides, and the mount shows the backing
    // directory exactly (timestamps and inode numbers included).
    assert_eq!(snapshot(&t.mnt, false), snapshot(&t.reference, false));
    assert_eq!(snapshot(&t.mnt, true), snapshot(&s.backing(), true));
    for name in ["h", "d/g", "a", "sparse", "l", "fifo"] {
        let (through, direct) = (
            fs::symlink_metadata(m.p(name)).expect("lstat"),
            fs::symlink_metadata(s.b(name)).expect("lstat"),
        );
        assert_eq!(through.ino(), direct.ino(), "{name}: st_ino");
    }
}

#[test]
fn new_entries_get_the_mode_the_caller_asked_for() {
    // The kernel has already applied the caller's umask to the mode it sends
    // (FUSE_DONT_MASK is not negotiated): the daemon must not mask it again.
    require_fuse!();
    let s = Scratch::new();
    let reference = s.dir.path().join("reference");
    fs::create_dir(&reference).expect("mkdir reference");
    let m = s.mount(&[]);
    let script = "set -e; cd \"$1\"
        umask 000; mkdir d000; : > f000; mkfifo p000; ln -s x l000
        umask 077; mkdir d077; : > f077
        umask 027; mkdir d027; : > f027";
    for root in [m.p(""), reference.clone()] {
        let out = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&root)
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let modes = |root: &Path| -> BTreeMap<String, String> {
        snapshot(root, false)
            .into_iter()
            .map(|(name, e)| (name, format!("{:o}", e.mode)))
            .collect()
    };
    assert_eq!(modes(&m.p("")), modes(&reference));
}

#[test]
fn flock_and_fcntl_locks_work_between_processes() {
    require_fuse!();
    let s = Scratch::new();
    let m = s.mount(&[]);
    let path = m.p("lockfile");
    fs::write(&path, b"x").expect("create");
    let other_flock = || {
        Command::new("flock")
            .args(["-n", "-E", "75"])
            .arg(&path)
            .arg("true")
            .status()
            .expect("flock(1)")
            .code()
    };
    let f = File::open(&path).expect("open");
    rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).expect("flock");
    assert_eq!(
        other_flock(),
        Some(75),
        "another process must not get the flock"
    );
    rustix::fs::flock(&f, FlockOperation::Unlock).expect("unlock");
    assert_eq!(other_flock(), Some(0), "free after unlock");

    let other_lockf = || {
        Command::new("python3")
            .args([
                "-c",
                "import fcntl, sys\nf = open(sys.argv[1], 'r+')\ntry:\n fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n sys.exit(75)",
            ])
            .arg(&path)
            .status()
            .expect("python3")
            .code()
    };
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open rw");
    rustix::fs::fcntl_lock(&f, FlockOperation::NonBlockingLockExclusive).expect("fcntl lock");
    assert_eq!(
        other_lockf(),
        Some(75),
        "another process must not get the POSIX lock"
    );
    rustix::fs::fcntl_lock(&f, FlockOperation::Unlock).expect("unlock");
    assert_eq!(other_lockf(), Some(0), "free after unlock");
}

#[test]
fn changes_in_the_backing_directory_show_through_the_mount() {
    require_fuse!();
    let s = super::support::scratch_with_store();
    s.write("existing", b"first version");
    s.write("verity-later", &data(50_000, 9));
    let m = s.mount(&["--attr-timeout", "0"]);
    assert_eq!(fs::read(m.p("existing")).expect("read"), b"first version");
    let kept_open = File::open(m.p("existing")).expect("open");
    assert!(fs::read(m.p("verity-later")).is_ok());

    s.write("new", b"created behind the mount");
    assert_eq!(
        fs::read(m.p("new")).expect("new file"),
        b"created behind the mount"
    );
    fs::write(s.b("existing"), b"second version, longer").expect("rewrite");
    assert_eq!(
        fs::read(m.p("existing")).expect("read"),
        b"second version, longer"
    );
    fs::write(s.b("existing"), b"third  version, longer").expect("rewrite same size");
    assert_eq!(
        fs::read(m.p("existing")).expect("read"),
        b"third  version, longer"
    );
    fs::rename(s.b("existing"), s.b("renamed")).expect("rename");
    assert_eq!(
        fs::metadata(m.p("existing")).expect_err("old name").kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        fs::read(m.p("renamed")).expect("new name"),
        b"third  version, longer"
    );
    let mut buf = String::new();
    (&kept_open)
        .read_to_string(&mut buf)
        .expect("an open file follows its rename");
    assert_eq!(buf, "third  version, longer");
    fs::create_dir(s.b("dir")).expect("mkdir");
    s.write("dir/inner", b"inner");
    assert_eq!(fs::read(m.p("dir/inner")).expect("nested"), b"inner");
    fs::set_permissions(s.b("renamed"), fs::Permissions::from_mode(0o604)).expect("chmod");
    assert_eq!(
        fs::metadata(m.p("renamed")).expect("stat").mode() & 0o777,
        0o604
    );
    rustix::fs::setxattr(s.b("renamed"), "user.k", b"v", XattrFlags::empty()).expect("setxattr");
    let mut v = [0u8; 8];
    let n = rustix::fs::getxattr(m.p("renamed"), "user.k", &mut v[..]).expect("getxattr");
    assert_eq!(&v[..n], b"v");
    fs::remove_file(s.b("new")).expect("unlink");
    assert_eq!(
        fs::metadata(m.p("new")).expect_err("unlinked").kind(),
        io::ErrorKind::NotFound
    );
    let names: Vec<_> = fs::read_dir(m.p(""))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        names.iter().any(|n| n == "dir") && !names.iter().any(|n| n == "new"),
        "{names:?}"
    );

    // Atomic replacement (write a new file, rename it over the old one): the
    // mount serves the new inode, verity or not.
    s.write("deploy", &data(30_000, 10));
    s.enable(&["deploy"], &[]);
    assert!(fs::read(m.p("deploy")).expect("first deploy") == data(30_000, 10));
    s.write("deploy.new", &data(40_000, 11));
    s.enable(&["deploy.new"], &[]);
    fs::rename(s.b("deploy.new"), s.b("deploy")).expect("rename over");
    assert!(fs::read(m.p("deploy")).expect("second deploy") == data(40_000, 11));
    s.write("deploy.new", b"plain again");
    fs::rename(s.b("deploy.new"), s.b("deploy")).expect("rename over");
    assert_eq!(
        fs::read(m.p("deploy")).expect("plain deploy"),
        b"plain again"
    );

    // A file enabled in the backing directory while mounted becomes a verity
    // file for the mount at its next open.
    s.enable(&["verity-later"], &[]);
    let err = OpenOptions::new()
        .write(true)
        .open(m.p("verity-later"))
        .expect_err("now immutable");
    assert_eq!(errno(&err), libc::EPERM);
    assert!(fs::read(m.p("verity-later")).expect("verified") == data(50_000, 9));
    super::support::flip_byte(&s.b("verity-later"), 49_999);
    // The page cache may hold the verified pages; a fresh mount reads the backing.
    drop(kept_open);
    drop(m);
    let m = s.mount(&[]);
    let err = fs::read(m.p("verity-later")).expect_err("tampered");
    assert_eq!(errno(&err), libc::EIO);
}

#[test]
fn files_created_by_another_user_belong_to_that_user() {
    require_fuse!();
    let s = Scratch::new();
    // Let user nobody reach the mount point.
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod scratch");
    fs::create_dir(s.b("pub")).expect("mkdir");
    fs::set_permissions(s.b("pub"), fs::Permissions::from_mode(0o777)).expect("chmod pub");
    fs::create_dir(s.b("sgid")).expect("mkdir");
    rustix::fs::chown(s.b("sgid"), None, Some(rustix::fs::Gid::from_raw(4321))).expect("chgrp");
    fs::set_permissions(s.b("sgid"), fs::Permissions::from_mode(0o2777)).expect("chmod sgid");
    s.write("rootonly", b"root's");
    let as_nobody = |script: &str, mnt: &Path| {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(mnt)
            .output()
            .expect("setpriv")
    };

    // Without --allow-other, other users cannot enter the mount at all.
    let m = s.mount(&[]);
    let out = as_nobody("ls \"$1\"", &m.p(""));
    assert!(
        !out.status.success(),
        "nobody listed a mount without --allow-other"
    );
    drop(m);

    let m = s.mount(&["--allow-other"]);
    let out = as_nobody(
        "set -e; cd \"$1\"; echo hi > pub/file; mkdir pub/dir; ln -s target pub/link; mkfifo pub/fifo; echo g > sgid/file; mkdir sgid/dir",
        &m.p(""),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["pub/file", "pub/dir", "pub/link", "pub/fifo"] {
        let meta = fs::symlink_metadata(s.b(name)).expect("backing entry");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (65534, 65534),
            "{name} in the backing directory"
        );
        let through = fs::symlink_metadata(m.p(name)).expect("through the mount");
        assert_eq!(
            (through.uid(), through.gid()),
            (65534, 65534),
            "{name} through the mount"
        );
    }
    // A set-group-ID directory gives new entries its group (and subdirectories its bit).
    let file = fs::metadata(s.b("sgid/file")).expect("stat");
    assert_eq!((file.uid(), file.gid()), (65534, 4321));
    let dir = fs::metadata(s.b("sgid/dir")).expect("stat");
    assert_eq!(
        (dir.uid(), dir.gid(), dir.mode() & 0o2000),
        (65534, 4321, 0o2000)
    );
    // The kernel checks permissions against the file modes (default_permissions).
    let out = as_nobody("echo x >> \"$1/rootonly\"", &m.p(""));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(s.b("rootonly")).expect("read"), b"root's");
    let out = as_nobody("cat \"$1/rootonly\"", &m.p(""));
    assert_eq!(out.stdout, b"root's");
    // Device nodes need CAP_MKNOD, which the kernel checks before asking the daemon.
    let out = as_nobody("mknod \"$1/pub/null\" c 1 3", &m.p(""));
    assert!(!out.status.success());
    assert!(!s.b("pub/null").exists());
}
