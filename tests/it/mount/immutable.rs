//! Verity files are immutable like the kernel's: no write access, truncation or
//! allocation (EPERM), while metadata operations work. Data leaving through
//! sendfile, copy_file_range or std::io::copy is verified like any read.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use super::harness::require_fuse;
use super::support::{PAGE, data, errno, flip_byte, scratch_with_store};

#[test]
fn write_access_truncate_and_fallocate_fail_with_eperm() {
    require_fuse!();
    let s = scratch_with_store();
    let content = data(50_000, 4);
    s.write("f", &content);
    s.enable(&["f"], &[]);
    let m = s.mount(&[]);
    let f = m.p("f");
    let opens: [(&str, OpenOptions); 6] = [
        ("O_WRONLY", OpenOptions::new().write(true).clone()),
        ("O_RDWR", OpenOptions::new().read(true).write(true).clone()),
        ("O_APPEND", OpenOptions::new().append(true).clone()),
        (
            "O_WRONLY|O_TRUNC",
            OpenOptions::new().write(true).truncate(true).clone(),
        ),
        (
            "O_RDONLY|O_TRUNC",
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_TRUNC)
                .clone(),
        ),
        (
            "O_CREAT|O_WRONLY (exists)",
            OpenOptions::new().write(true).create(true).clone(),
        ),
    ];
    for (what, opts) in opens {
        let err = opts.open(&f).expect_err(what);
        assert_eq!(errno(&err), libc::EPERM, "{what}: {err}");
    }
    // truncate(2) by path reaches the daemon as a setattr of the size.
    let out = Command::new("python3")
        .args(["-c", "import os, sys\ntry:\n os.truncate(sys.argv[1], 3)\nexcept OSError as e:\n sys.exit(e.errno)"])
        .arg(&f)
        .status()
        .expect("python3");
    assert_eq!(out.code(), Some(libc::EPERM), "truncate(2): {out}");
    // fallocate needs a writable descriptor, which cannot be had: the kernel
    // refuses it on a read-only one before asking the daemon.
    let ro = File::open(&f).expect("open read-only");
    let err = rustix::fs::fallocate(&ro, rustix::fs::FallocateFlags::empty(), 0, 1 << 20)
        .expect_err("fallocate");
    assert_eq!(err, rustix::io::Errno::BADF);
    let err = rustix::fs::fallocate(
        &ro,
        rustix::fs::FallocateFlags::KEEP_SIZE | rustix::fs::FallocateFlags::PUNCH_HOLE,
        0,
        4096,
    )
    .expect_err("punch hole");
    assert_eq!(err, rustix::io::Errno::BADF);
    drop(ro);
    assert!(fs::read(&f).expect("read") == content, "content unchanged");
    assert!(
        fs::read(s.b("f")).expect("read backing") == content,
        "backing unchanged"
    );
}

#[test]
fn a_handle_opened_before_enable_cannot_modify_the_verity_file() {
    // fsverity-fuse enable works on the backing directory, so a file can become
    // verity while the mount has it open for writing (the kernel's ETXTBSY check
    // cannot exist offline). Once the mount has seen the metadata, that handle must
    // not change the file: writes, fallocate and ftruncate fail with EPERM.
    require_fuse!();
    let s = scratch_with_store();
    let content = data(3 * PAGE as usize, 5);
    s.write("f", &content);
    let m = s.mount(&["--attr-timeout", "0"]);
    let w = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.p("f"))
        .expect("open plain for writing");
    w.write_all_at(&content[..10], 0).expect("plain write");
    s.enable(&["f"], &[]);
    // A stat lets the mount notice the new metadata (ctime changed).
    assert_eq!(
        fs::metadata(m.p("f")).expect("stat").len(),
        content.len() as u64
    );
    let err = OpenOptions::new()
        .write(true)
        .open(m.p("f"))
        .expect_err("new write opens are refused");
    assert_eq!(errno(&err), libc::EPERM);
    let err = w
        .write_all_at(b"X", 100)
        .expect_err("write through the old handle");
    assert_eq!(errno(&err), libc::EPERM, "write: {err}");
    let err = rustix::fs::fallocate(&w, rustix::fs::FallocateFlags::empty(), 0, 1 << 20)
        .expect_err("fallocate");
    assert_eq!(err, rustix::io::Errno::PERM, "fallocate");
    let err = w.set_len(5).expect_err("ftruncate");
    assert_eq!(errno(&err), libc::EPERM, "ftruncate: {err}");
    drop(w);
    assert!(fs::read(m.p("f")).expect("verified read") == content);
    assert!(fs::read(s.b("f")).expect("backing") == content);
}

#[test]
fn chmod_chown_utimes_rename_link_unlink_work_and_keep_verification() {
    require_fuse!();
    let s = scratch_with_store();
    let content = data(300_000, 6);
    s.write("f", &content);
    s.enable(&["f"], &[]);
    fs::create_dir(s.b("sub")).expect("mkdir");
    let m = s.mount(&[]);
    fs::set_permissions(m.p("f"), fs::Permissions::from_mode(0o400)).expect("chmod");
    rustix::fs::chown(
        m.p("f"),
        Some(rustix::fs::Uid::from_raw(1234)),
        Some(rustix::fs::Gid::from_raw(5678)),
    )
    .expect("chown");
    let when = rustix::fs::Timespec {
        tv_sec: 1_000_000_000,
        tv_nsec: 5,
    };
    let times = rustix::fs::Timestamps {
        last_access: when,
        last_modification: when,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        m.p("f"),
        &times,
        rustix::fs::AtFlags::empty(),
    )
    .expect("utimes");
    fs::rename(m.p("f"), m.p("sub/g")).expect("rename");
    fs::hard_link(m.p("sub/g"), m.p("h")).expect("link");
    fs::remove_file(m.p("sub/g")).expect("unlink");
    // Other xattrs are metadata too, and may change.
    rustix::fs::setxattr(
        m.p("h"),
        "user.note",
        b"kept",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr on a verity file");
    rustix::fs::removexattr(m.p("h"), "user.note").expect("removexattr on a verity file");

    let meta = fs::metadata(s.b("h")).expect("backing");
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o400, 1234, 5678)
    );
    assert_eq!((meta.mtime(), meta.mtime_nsec()), (1_000_000_000, 5));
    assert!(!s.b("f").exists() && !s.b("sub/g").exists());
    let through = fs::metadata(m.p("h")).expect("stat");
    assert_eq!(
        (
            through.mode() & 0o7777,
            through.uid(),
            through.gid(),
            through.mtime()
        ),
        (0o400, 1234, 5678, 1_000_000_000)
    );
    // Still a verity file, still verified.
    assert!(fs::read(m.p("h")).expect("read") == content);
    let err = OpenOptions::new()
        .write(true)
        .open(m.p("h"))
        .expect_err("still immutable");
    assert_eq!(errno(&err), libc::EPERM);
    drop(m);
    flip_byte(&s.b("h"), 200_000);
    let m = s.mount(&[]);
    let err = fs::read(m.p("h")).expect_err("tampered after the changes");
    assert_eq!(errno(&err), libc::EIO);
}

/// Copies `src` to `dst` with sendfile until end of file or an error; returns
/// the bytes copied and the error, if any.
fn sendfile_all(src: &Path, dst: &Path) -> (u64, Option<rustix::io::Errno>) {
    let input = File::open(src).expect("open source");
    let output = File::create(dst).expect("create destination");
    let mut offset = 0u64;
    loop {
        match rustix::fs::sendfile(&output, &input, Some(&mut offset), 1 << 20) {
            Ok(0) => return (offset, None),
            Ok(_) => {}
            Err(e) => return (offset, Some(e)),
        }
    }
}

/// copy_file_range from `src` to `dst` until end of file or an error.
fn copy_range_all(src: &Path, dst: &Path) -> (u64, Option<rustix::io::Errno>) {
    let input = File::open(src).expect("open source");
    let output = File::create(dst).expect("create destination");
    let (mut off_in, mut off_out) = (0u64, 0u64);
    loop {
        match rustix::fs::copy_file_range(
            &input,
            Some(&mut off_in),
            &output,
            Some(&mut off_out),
            1 << 20,
        ) {
            Ok(0) => return (off_in, None),
            Ok(_) => {}
            Err(e) => return (off_in, Some(e)),
        }
    }
}

#[test]
fn sendfile_copy_file_range_and_io_copy_deliver_verified_bytes() {
    require_fuse!();
    let s = scratch_with_store();
    let size = 100 * PAGE as usize + 99;
    let good = data(size, 21);
    let bad = data(size, 22);
    s.write("good", &good);
    s.write("bad", &bad);
    s.enable(&["good", "bad"], &[]);
    let bad_page = 50;
    flip_byte(&s.b("bad"), bad_page * PAGE + 1);
    let out = s.dir.path().join("out");
    let m = s.mount(&[]);

    // sendfile to a file outside the mount.
    assert_eq!(sendfile_all(&m.p("good"), &out), (size as u64, None));
    assert!(fs::read(&out).expect("read copy") == good, "sendfile copy");
    let (copied, err) = sendfile_all(&m.p("bad"), &out);
    assert_eq!(
        err,
        Some(rustix::io::Errno::IO),
        "sendfile of a tampered file"
    );
    assert!(
        copied <= bad_page * PAGE,
        "sendfile went past the bad page: {copied}"
    );
    assert!(
        fs::read(&out).expect("read copy") == bad[..copied as usize],
        "prefix before the error"
    );

    // copy_file_range into a plain file of the same mount: the daemon refuses to
    // copy a verity file in the backing filesystem, so the kernel copies through
    // the verified read path.
    assert_eq!(
        copy_range_all(&m.p("good"), &m.p("copy")),
        (size as u64, None)
    );
    assert!(
        fs::read(s.b("copy")).expect("backing copy") == good,
        "copy_file_range copy"
    );
    let (copied, err) = copy_range_all(&m.p("bad"), &m.p("copy2"));
    assert_eq!(
        err,
        Some(rustix::io::Errno::IO),
        "copy_file_range of a tampered file"
    );
    assert!(
        copied <= bad_page * PAGE,
        "copy went past the bad page: {copied}"
    );
    assert!(fs::read(s.b("copy2")).expect("backing copy") == bad[..copied as usize]);

    // std::io::copy (copy_file_range / sendfile / read-write, whichever works).
    for (name, expected) in [("good", &good), ("bad", &bad)] {
        let mut input = File::open(m.p(name)).expect("open");
        let mut output = File::create(&out).expect("create");
        let r = io::copy(&mut input, &mut output);
        if name == "good" {
            assert_eq!(r.expect("io::copy"), size as u64);
            assert!(fs::read(&out).expect("read") == *expected);
        } else {
            let err = r.expect_err("io::copy of a tampered file");
            assert_eq!(errno(&err), libc::EIO, "{err}");
        }
    }
}

/// Verity files' attributes are cached for `--verity-attr-timeout` (plain
/// files' for `--attr-timeout`): changes made through the mount show at once
/// all the same, and changes in the backing directory show for plain files at
/// once (timeout 0) but for verity files only after theirs; their entries keep
/// `--attr-timeout`, so a verity file replaced in the backing directory shows
/// at once.
#[test]
fn verity_attributes_are_cached_longer_but_changes_through_the_mount_show_at_once() {
    require_fuse!();
    let s = scratch_with_store();
    s.write("v", &data(20_000, 8));
    s.write("w", &data(20_000, 9));
    s.write("plain", b"plain");
    s.enable(&["v", "w"], &[]);
    let m = s.mount(&["--attr-timeout", "0", "--verity-attr-timeout", "3600"]);
    let mode = |p: &Path| fs::metadata(p).expect("stat").mode() & 0o7777;
    for name in ["v", "plain"] {
        fs::set_permissions(s.b(name), fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(mode(&m.p(name)), 0o644, "{name}");
    }
    // Through the mount: at once.
    fs::set_permissions(m.p("v"), fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(mode(&m.p("v")), 0o600);
    fs::rename(m.p("v"), m.p("v2")).expect("rename");
    assert_eq!(
        errno(&fs::metadata(m.p("v")).expect_err("renamed")),
        libc::ENOENT
    );
    assert_eq!(fs::read(m.p("v2")).expect("read"), data(20_000, 8));
    // (A read marks the kernel's atime stale: the next stat asks again.)
    assert_eq!(mode(&m.p("v2")), 0o600);
    fs::metadata(m.p("w")).expect("stat");
    fs::remove_file(m.p("w")).expect("unlink");
    assert_eq!(
        errno(&fs::metadata(m.p("w")).expect_err("removed")),
        libc::ENOENT
    );
    // In the backing directory: a plain file's change shows at once, a
    // verity file's attributes are cached (seen through open descriptors: a
    // lookup by path, whose entry expires at --attr-timeout, refreshes them).
    let (vf, pf) = (
        File::open(m.p("v2")).expect("open"),
        File::open(m.p("plain")).expect("open"),
    );
    assert_eq!(vf.metadata().expect("fstat").mode() & 0o7777, 0o600);
    fs::set_permissions(s.b("plain"), fs::Permissions::from_mode(0o640)).expect("chmod");
    fs::set_permissions(s.b("v2"), fs::Permissions::from_mode(0o640)).expect("chmod");
    assert_eq!(pf.metadata().expect("fstat").mode() & 0o7777, 0o640);
    assert_eq!(vf.metadata().expect("fstat").mode() & 0o7777, 0o600);
    drop((vf, pf));
    // A new verity file renamed over it in the backing directory: served at once.
    s.write("v3", &data(30_000, 12));
    s.enable(&["v3"], &[]);
    fs::rename(s.b("v3"), s.b("v2")).expect("rename over");
    assert_eq!(fs::read(m.p("v2")).expect("replaced"), data(30_000, 12));
}
