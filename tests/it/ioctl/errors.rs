//! Every error of FS_IOC_ENABLE_VERITY, FS_IOC_MEASURE_VERITY and FS_IOC_GETFLAGS
//! that the kernel documents (Documentation/filesystems/fsverity.rst), through
//! the stock `fsverity` tool where it can express the request and through raw
//! ioctls (`raw`) where it cannot. After each refused enable the
//! file must still be an ordinary file that a valid enable can convert.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use super::raw::{EnableCall, enable_verity, measure_verity};

use super::tools::{
    FS_VERITY_FL, Fsverity, errno, expect_tool_errno, inode_flags, ioctl_enable, ioctl_measure,
    is_verity, program, scratch, sha256_call,
};
use crate::mount::harness::require_fuse;
use crate::util::{random_bytes, run};

const ENABLE: &str = "FS_IOC_ENABLE_VERITY";
const MEASURE: &str = "FS_IOC_MEASURE_VERITY";

/// Fails unless `r` is the error `want`.
#[track_caller]
fn expect_errno<T: std::fmt::Debug>(r: io::Result<T>, want: i32, what: &str) {
    match r {
        Ok(v) => panic!("{what}: succeeded ({v:?}), expected errno {want}"),
        Err(e) => assert_eq!(errno(&e), want, "{what}: {e}"),
    }
}

/// The file at `path` was left alone by refused enables: not verity, and a valid
/// enable now works and measures as `fsverity digest` says.
#[track_caller]
fn still_enableable(fsv: &Fsverity, path: &Path, backing: &Path) {
    assert!(
        !is_verity(path),
        "{}: a refused enable left verity on",
        path.display()
    );
    fsv.enable_ok(path, &[]);
    assert_eq!(fsv.measure(path), fsv.digest(&[], backing));
}

#[test]
fn invalid_enable_arguments_are_einval() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    s.write("f", &random_bytes(20_000, 11));
    let m = s.mount(&[]);
    let f = m.p("f");
    let with = |change: &dyn Fn(&mut EnableCall<'static>)| {
        let mut c = sha256_call();
        change(&mut c);
        c
    };
    let cases: Vec<(&str, EnableCall<'static>)> = vec![
        ("version 0", with(&|c| c.version = 0)),
        ("version 2", with(&|c| c.version = 2)),
        ("hash algorithm 0", with(&|c| c.hash_algorithm = 0)),
        ("hash algorithm 3", with(&|c| c.hash_algorithm = 3)),
        (
            "hash algorithm 0xffff",
            with(&|c| c.hash_algorithm = 0xffff),
        ),
        ("block size 0", with(&|c| c.block_size = 0)),
        ("block size 4095", with(&|c| c.block_size = 4095)),
        ("block size 3072", with(&|c| c.block_size = 3072)),
        ("block size 512", with(&|c| c.block_size = 512)),
        ("block size 131072", with(&|c| c.block_size = 131_072)),
        ("block size 2^31", with(&|c| c.block_size = 1 << 31)),
        ("reserved1 = 1", with(&|c| c.reserved1 = 1)),
        ("reserved2[0] = 1", with(&|c| c.reserved2 = 1)),
        ("reserved2[0] top bit", with(&|c| c.reserved2 = 1 << 63)),
    ];
    for (what, call) in &cases {
        expect_errno(ioctl_enable(&f, call), libc::EINVAL, what);
    }
    // The same through the stock tool, where it lets the request through (it
    // refuses unknown algorithms and non-powers of two itself, with exit 2).
    for opt in ["--block-size=512", "--block-size=131072"] {
        expect_tool_errno(&fsv.enable(&f, &[opt]), ENABLE, libc::EINVAL);
    }
    still_enableable(&fsv, &f, &s.b("f"));
}

#[test]
fn oversized_salt_and_signature_are_emsgsize() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    s.write("f", &random_bytes(9000, 12));
    s.write("salt32", &random_bytes(9000, 13));
    let big_sig = s.dir.path().join("big.sig");
    crate::util::write(&big_sig, &[0x30; 16_129]);
    let max_sig = s.dir.path().join("max.sig");
    crate::util::write(&max_sig, &[0x30; 16_128]);
    let m = s.mount(&[]);
    let f = m.p("f");

    let salt33 = [7u8; 33];
    let long_sig = [0x30u8; 16_129];
    expect_errno(
        ioctl_enable(
            &f,
            &EnableCall {
                salt: &salt33,
                ..sha256_call()
            },
        ),
        libc::EMSGSIZE,
        "33-byte salt",
    );
    expect_errno(
        ioctl_enable(
            &f,
            &EnableCall {
                signature: &long_sig,
                ..sha256_call()
            },
        ),
        libc::EMSGSIZE,
        "16129-byte signature",
    );
    let salt_opt = format!("--salt={}", "07".repeat(33));
    expect_tool_errno(&fsv.enable(&f, &[&salt_opt]), ENABLE, libc::EMSGSIZE);
    let sig_opt = format!("--signature={}", big_sig.display());
    expect_tool_errno(&fsv.enable(&f, &[&sig_opt]), ENABLE, libc::EMSGSIZE);
    // At the limits the size is accepted: a 16128-byte signature is refused for
    // its content (EBADMSG, malformed), a 32-byte salt works.
    let sig_opt = format!("--signature={}", max_sig.display());
    expect_tool_errno(&fsv.enable(&f, &[&sig_opt]), ENABLE, libc::EBADMSG);
    let salt_opt = format!("--salt={}", "07".repeat(32));
    fsv.enable_ok(&m.p("salt32"), &[&salt_opt]);
    assert_eq!(
        fsv.measure(&m.p("salt32")),
        fsv.digest(&[&salt_opt], &s.b("salt32"))
    );
    still_enableable(&fsv, &f, &s.b("f"));
}

#[test]
fn a_tree_deeper_than_eight_levels_is_efbig() {
    // The kernel refuses a file whose tree would need more than
    // FS_VERITY_MAX_LEVELS (8) levels with EFBIG: with 1 KiB blocks and SHA-512
    // (16 hashes per block) that is anything over 4 TiB. A sparse file.
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    let backing = s.write("huge", b"");
    File::options()
        .write(true)
        .open(&backing)
        .and_then(|f| f.set_len(16u64.pow(8) * 1024 + 1))
        .expect("a 4 TiB sparse file");
    let m = s.mount(&[]);
    let f = m.p("huge");
    let opts = ["--hash-alg=sha512", "--block-size=1024"];
    expect_tool_errno(&fsv.enable(&f, &opts), ENABLE, libc::EFBIG);
    expect_errno(
        ioctl_enable(
            &f,
            &EnableCall {
                hash_algorithm: 2,
                block_size: 1024,
                ..sha256_call()
            },
        ),
        libc::EFBIG,
        "9-level tree",
    );
    assert!(!is_verity(&f), "a refused enable left verity on");
}

#[test]
fn directory_is_eisdir() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    fs::create_dir(s.b("d")).expect("mkdir");
    let m = s.mount(&[]);
    for dir in [m.p("d"), m.p("")] {
        expect_tool_errno(&fsv.enable(&dir, &[]), ENABLE, libc::EISDIR);
        expect_errno(
            ioctl_enable(&dir, &sha256_call()),
            libc::EISDIR,
            "directory",
        );
        expect_errno(ioctl_measure(&dir), libc::ENODATA, "measure of a directory");
    }
}

/// A FIFO in the mount can be opened (O_RDONLY|O_NONBLOCK) but its file
/// operations are the kernel's pipe operations: no ioctl reaches the daemon and
/// the caller gets ENOTTY — as on a filesystem with native fs-verity, where pipe
/// ioctls never reach fs-verity either (the documented EINVAL for "neither a
/// regular file nor a directory" is unreachable from a FIFO). A symlink can only
/// be opened with O_PATH, whose descriptors take no ioctl at all (EBADF).
#[test]
fn fifo_and_symlink_never_reach_the_daemon() {
    require_fuse!();
    let s = scratch();
    s.write("f", b"target");
    let m = s.mount(&[]);
    let fifo = m.p("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo through the mount");
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open the FIFO");
    expect_errno(
        enable_verity(&f, &sha256_call()),
        libc::ENOTTY,
        "enable on a FIFO",
    );
    expect_errno(measure_verity(&f, 64), libc::ENOTTY, "measure on a FIFO");
    expect_errno(
        rustix::fs::ioctl_getflags(&f).map_err(io::Error::from),
        libc::ENOTTY,
        "getflags on a FIFO",
    );

    std::os::unix::fs::symlink("f", m.p("link")).expect("symlink through the mount");
    let link = rustix::fs::openat(
        rustix::fs::CWD,
        m.p("link"),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW,
        rustix::fs::Mode::empty(),
    )
    .expect("open the symlink itself");
    expect_errno(
        enable_verity(&link, &sha256_call()),
        libc::EBADF,
        "enable on a symlink",
    );
    // The target is untouched.
    assert!(!is_verity(&m.p("f")));
}

#[test]
fn second_enable_is_eexist() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    s.write("f", &random_bytes(70_000, 14));
    let m = s.mount(&[]);
    let f = m.p("f");
    fsv.enable_ok(&f, &[]);
    let want = fsv.digest(&[], &s.b("f"));
    for opts in [
        &[][..],
        &["--hash-alg=sha512"],
        &["--block-size=1024", "--salt=ab"],
    ] {
        expect_tool_errno(&fsv.enable(&f, opts), ENABLE, libc::EEXIST);
    }
    expect_errno(ioctl_enable(&f, &sha256_call()), libc::EEXIST, "raw enable");
    assert_eq!(fsv.measure(&f), want, "a refused enable changed the digest");
    drop(m);
    let m = s.mount(&[]);
    expect_tool_errno(&fsv.enable(&m.p("f"), &[]), ENABLE, libc::EEXIST);
    assert_eq!(fsv.measure(&m.p("f")), want);
}

/// Enables `path` with the default parameters, retrying while the answer is
/// ETXTBSY for up to two seconds. Returns how many attempts were refused.
fn enable_once_writers_are_gone(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut refused = 0;
    loop {
        match ioctl_enable(path, &sha256_call()) {
            Ok(()) => return refused,
            Err(e) if errno(&e) == libc::ETXTBSY && Instant::now() < deadline => {
                refused += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("enable of {} after its writers closed: {e}", path.display()),
        }
    }
}

#[test]
fn file_open_for_writing_is_etxtbsy() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    s.write("w", &random_bytes(40_000, 15));
    s.write("rw", &random_bytes(40_000, 16));
    let m = s.mount(&[]);
    // The caller's own writable descriptor counts as a writer; a write-only
    // one is refused before that, for lack of read access (EBADF, as the
    // kernel's enable.c checks FMODE_READ first: rpm's fsverity plugin hits it).
    for (name, opts, own_fd_errno) in [
        ("w", OpenOptions::new().write(true).clone(), libc::EBADF),
        (
            "rw",
            OpenOptions::new().read(true).write(true).clone(),
            libc::ETXTBSY,
        ),
    ] {
        let path = m.p(name);
        let writer = opts.open(&path).expect("open for writing");
        expect_tool_errno(&fsv.enable(&path, &[]), ENABLE, libc::ETXTBSY);
        expect_errno(
            enable_verity(&writer, &sha256_call()),
            own_fd_errno,
            "own fd",
        );
        assert!(!is_verity(&path));
        drop(writer);
        let refused = enable_once_writers_are_gone(&path);
        if refused > 0 {
            eprintln!("{name}: enable refused {refused} time(s) after the writer closed");
        }
        assert_eq!(fsv.measure(&path), fsv.digest(&[], &s.b(name)));
    }
}

/// Builds a 512 MiB sparse file with 48 MiB of data in the middle: long enough to
/// enable that a second enable, started right after the first, finds it running.
fn sparse_with_data(path: &Path, seed: u64) {
    let f = File::create(path).expect("create");
    f.set_len(512 << 20).expect("set_len");
    let chunk = random_bytes(1 << 20, seed);
    for i in 0..48u64 {
        std::os::unix::fs::FileExt::write_all_at(&f, &chunk, (200 << 20) + (i << 20))
            .expect("write data");
    }
}

#[test]
fn enable_while_an_enable_runs_is_ebusy() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    let m = s.mount(&[]);
    for attempt in 0..3 {
        let name = format!("big{attempt}");
        sparse_with_data(&s.b(&name), 17 + attempt);
        let path = m.p(&name);
        let start = Arc::new(Barrier::new(2));
        let first = {
            let (path, start) = (path.clone(), start.clone());
            std::thread::spawn(move || {
                let f = File::open(&path).expect("open");
                start.wait();
                enable_verity(&f, &sha256_call()).map_err(|e| errno(&e))
            })
        };
        let f = File::open(&path).expect("open");
        start.wait();
        std::thread::sleep(Duration::from_millis(2));
        let second = enable_verity(&f, &sha256_call()).map_err(|e| errno(&e));
        let first = first.join().expect("enable thread");
        let mut results = [first, second];
        results.sort();
        assert!(
            results == [Ok(()), Err(libc::EBUSY)] || results == [Ok(()), Err(libc::EEXIST)],
            "two enables of one file: {results:?}"
        );
        assert_eq!(fsv.measure(&path), fsv.digest(&[], &s.b(&name)));
        if results[1] == Err(libc::EBUSY) {
            return;
        }
        eprintln!("attempt {attempt}: the first enable ended before the second began");
    }
    panic!("never saw EBUSY in three attempts");
}

#[test]
fn read_only_mount_is_erofs() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    s.write("f", &random_bytes(10_000, 18));
    let m = s.mount(&["--ro"]);
    let f = m.p("f");
    expect_tool_errno(&fsv.enable(&f, &[]), ENABLE, libc::EROFS);
    expect_errno(ioctl_enable(&f, &sha256_call()), libc::EROFS, "raw enable");
    assert!(!is_verity(&f));
    drop(m);
    let m = s.mount(&[]);
    still_enableable(&fsv, &m.p("f"), &s.b("f"));
}

/// An unprivileged caller (uid 65534, through `setpriv`) may read a root-owned
/// 0644 file but not write it, so may not enable verity on it: EACCES. The same
/// caller may enable a file it can write (0646), so the refusal is the write
/// permission check and nothing else.
#[test]
fn caller_without_write_permission_is_eacces() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let Some(setpriv) = program("/usr/bin/setpriv", "util-linux") else {
        return;
    };
    let s = scratch();
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod scratch");
    for (name, mode) in [("readonly", 0o644), ("writable", 0o646)] {
        s.write(name, &random_bytes(30_000, 19));
        fs::set_permissions(s.b(name), fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let m = s.mount(&["--allow-other"]);
    let as_nobody = |args: &[&std::ffi::OsStr]| {
        let mut all: Vec<&std::ffi::OsStr> = ["--reuid=65534", "--regid=65534", "--clear-groups"]
            .iter()
            .map(std::ffi::OsStr::new)
            .collect();
        all.extend_from_slice(args);
        run(&setpriv, all)
    };
    let fsverity = std::ffi::OsStr::new(crate::util::FSVERITY);
    let enable = std::ffi::OsStr::new("enable");

    let readonly = m.p("readonly");
    let cat = as_nobody(&["cat".as_ref(), readonly.as_os_str()]);
    cat.expect_success();
    expect_tool_errno(
        &as_nobody(&[fsverity, enable, readonly.as_os_str()]),
        ENABLE,
        libc::EACCES,
    );
    assert!(!is_verity(&readonly));

    let writable = m.p("writable");
    as_nobody(&[fsverity, enable, writable.as_os_str()]).expect_success();
    assert_eq!(fsv.measure(&writable), fsv.digest(&[], &s.b("writable")));
    // The owner may.
    still_enableable(&fsv, &readonly, &s.b("readonly"));
}

#[test]
fn measure_errors_are_enodata_and_eoverflow() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    s.write("plain", b"plain");
    s.write("sha256", &random_bytes(12_345, 20));
    s.write("sha512", &random_bytes(12_345, 21));
    let m = s.mount(&[]);
    expect_errno(
        ioctl_measure(&m.p("plain")),
        libc::ENODATA,
        "measure of a plain file",
    );
    let out = fsv.run([std::ffi::OsStr::new("measure"), m.p("plain").as_os_str()]);
    expect_tool_errno(&out, MEASURE, libc::ENODATA);

    fsv.enable_ok(&m.p("sha256"), &[]);
    fsv.enable_ok(&m.p("sha512"), &["--hash-alg=sha512"]);
    for (name, alg, size, opts) in [
        ("sha256", 1u16, 32u16, &[][..]),
        ("sha512", 2, 64, &["--hash-alg=sha512"]),
    ] {
        let f = File::open(m.p(name)).expect("open");
        for room in [0, 1, size / 2, size - 1] {
            expect_errno(
                measure_verity(&f, room),
                libc::EOVERFLOW,
                &format!("{name} measure with room for {room} bytes"),
            );
        }
        let want = fsv.digest(opts, &s.b(name));
        for room in [size, size + 1, 64, 1000] {
            let (got_alg, digest) = measure_verity(&f, room).expect("measure");
            assert_eq!(got_alg, alg, "{name}: algorithm id");
            assert_eq!(
                format!("{name}:{}", hex::encode(&digest)),
                want,
                "{name}: room {room}"
            );
        }
    }
}

/// FS_IOC_GETFLAGS through the mount is the backing file's flags, plus
/// FS_VERITY_FL exactly on verity files.
#[test]
fn getflags_has_fs_verity_fl_on_verity_files_only() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    s.write("f", &random_bytes(5000, 22));
    s.write("plain", b"plain");
    fs::create_dir(s.b("d")).expect("mkdir");
    let m = s.mount(&[]);
    for name in ["f", "plain", "d"] {
        let flags = inode_flags(&m.p(name));
        assert_eq!(flags & FS_VERITY_FL, 0, "{name}: {flags:#x}");
        assert_eq!(flags, inode_flags(&s.b(name)), "{name}: backing flags");
    }
    fsv.enable_ok(&m.p("f"), &[]);
    let flags = inode_flags(&m.p("f"));
    assert_eq!(flags, inode_flags(&s.b("f")) | FS_VERITY_FL, "{flags:#x}");
    assert_eq!(inode_flags(&m.p("plain")) & FS_VERITY_FL, 0);
    drop(m);
    let m = s.mount(&[]);
    assert_ne!(inode_flags(&m.p("f")) & FS_VERITY_FL, 0, "after remount");
}
