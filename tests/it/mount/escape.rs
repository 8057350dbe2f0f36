//! Symlinks and `..` cannot make the daemon reach outside the backing directory.
//!
//! What these tests can and cannot prove. The kernel splits paths into single
//! components and resolves `.`, `..` and symlinks itself: a name with `/` or a
//! `..` lookup never reaches a FUSE daemon, and when a caller opens
//! `mnt/link-to-outside`, it is the *kernel* that follows the link, in the caller's
//! mount namespace and with the caller's permissions, exactly as it would in the
//! backing directory itself. That is not an escape. What matters is what the
//! daemon, running as root, does on its own: it must present a symlink as a
//! symlink (its target is a string), never follow one when it operates on an
//! entry (xattrs, ownership, times, links, renames), keep operating on the object
//! it looked up even when a directory is swapped for a symlink behind its back,
//! and never write outside the backing directory (its tree store included).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, XattrFlags};

use super::harness::{Scratch, require_fuse};
use super::support::data;

/// The user xattr names of `p`, sorted (following a symlink or not).
fn user_xattrs(p: &Path, follow: bool) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    let n = if follow {
        rustix::fs::listxattr(p, &mut buf[..])
    } else {
        rustix::fs::llistxattr(p, &mut buf[..])
    }
    .unwrap_or(0);
    let mut names: Vec<String> = buf[..n]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_symlink_to_outside_is_a_string_and_operations_on_it_stay_on_the_link() {
    require_fuse!();
    let s = Scratch::new();
    let outside = s.dir.path().join("outside");
    fs::create_dir_all(outside.join("dir")).expect("mkdir outside");
    let secret = outside.join("secret");
    fs::write(&secret, b"outside secret").expect("write secret");
    fs::write(outside.join("dir/inner"), b"outside inner").expect("write inner");
    rustix::fs::setxattr(&secret, "user.secret", b"s", XattrFlags::empty()).expect("xattr");
    let secret_before = fs::metadata(&secret).expect("stat secret");
    symlink(&secret, s.b("abs")).expect("symlink");
    symlink(outside.join("dir"), s.b("dirlink")).expect("symlink");
    let m = s.mount(&[]);

    // Presented as a symlink whose target is just a string.
    assert!(
        fs::symlink_metadata(m.p("abs"))
            .expect("lstat")
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_link(m.p("abs")).expect("readlink"), secret);

    // Operations on the link itself never reach the target.
    let mut buf = [0u8; 16];
    let r = rustix::fs::lgetxattr(m.p("abs"), "user.secret", &mut buf[..]);
    assert!(
        r.is_err(),
        "lgetxattr on the link returned the target's xattr: {r:?}"
    );
    assert!(!user_xattrs(&m.p("abs"), false).contains(&"user.secret".to_string()));
    let r = rustix::fs::lsetxattr(m.p("abs"), "user.evil", b"x", XattrFlags::empty());
    assert!(r.is_err(), "lsetxattr on a symlink succeeded");
    let r = rustix::fs::lremovexattr(m.p("abs"), "user.secret");
    assert!(r.is_err(), "lremovexattr on a symlink succeeded");
    rustix::fs::chownat(
        rustix::fs::CWD,
        m.p("abs"),
        Some(rustix::fs::Uid::from_raw(1234)),
        None,
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("lchown");
    let ts = rustix::fs::Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    // The daemon may refuse (EOPNOTSUPP); what matters is that the target is untouched.
    let _ = rustix::fs::utimensat(
        rustix::fs::CWD,
        m.p("abs"),
        &times,
        AtFlags::SYMLINK_NOFOLLOW,
    );
    fs::hard_link(m.p("abs"), m.p("abs2")).expect("link the symlink");
    fs::rename(m.p("abs2"), m.p("abs3")).expect("rename");
    assert!(
        fs::symlink_metadata(s.b("abs3"))
            .expect("backing")
            .file_type()
            .is_symlink()
    );
    fs::remove_file(m.p("abs3")).expect("unlink the link");

    assert_eq!(
        fs::symlink_metadata(s.b("abs"))
            .expect("backing link")
            .uid(),
        1234,
        "lchown changed the link"
    );
    let after = fs::metadata(&secret).expect("stat secret");
    assert_eq!(
        (
            after.uid(),
            after.nlink(),
            after.mtime(),
            after.mtime_nsec(),
            after.len()
        ),
        (
            secret_before.uid(),
            1,
            secret_before.mtime(),
            secret_before.mtime_nsec(),
            secret_before.len()
        ),
        "the outside file was touched"
    );
    assert_eq!(user_xattrs(&secret, true), vec!["user.secret".to_string()]);
    assert_eq!(fs::read(&secret).expect("read secret"), b"outside secret");

    // Through a symlinked directory the kernel resolves the path as it would in
    // the backing directory itself: the mount adds no reach.
    assert!(
        fs::symlink_metadata(m.p("dirlink"))
            .expect("lstat")
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read(m.p("dirlink/inner")).ok(),
        fs::read(s.b("dirlink/inner")).ok()
    );
    // `..` is resolved by the kernel's path walk: inside the mount it stays inside.
    fs::create_dir(m.p("d")).expect("mkdir");
    assert_eq!(
        fs::metadata(m.p("d/..")).expect("stat").ino(),
        fs::metadata(m.p("")).expect("stat").ino()
    );
}

#[test]
fn entries_already_looked_up_keep_their_object_when_swapped_for_a_symlink() {
    require_fuse!();
    let s = Scratch::new();
    let outside = s.dir.path().join("outside");
    fs::create_dir(&outside).expect("mkdir outside");
    fs::write(outside.join("f"), b"outside").expect("write");
    fs::create_dir(s.b("d")).expect("mkdir d");
    fs::write(s.b("d/f"), b"inside").expect("write");
    s.write("file", b"original file");
    rustix::fs::setxattr(s.b("file"), "user.which", b"original", XattrFlags::empty())
        .expect("xattr");
    rustix::fs::setxattr(
        outside.join("f"),
        "user.which",
        b"outside",
        XattrFlags::empty(),
    )
    .expect("xattr");
    let m = s.mount(&["--attr-timeout", "0"]);

    let dir = rustix::fs::open(m.p("d"), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
        .expect("open dir");
    let file = File::open(m.p("file")).expect("open file");
    // Swap both for symlinks to the outside, behind the mount's back.
    fs::rename(s.b("d"), s.b("d.orig")).expect("rename d");
    symlink(&outside, s.b("d")).expect("symlink d");
    fs::rename(s.b("file"), s.b("file.orig")).expect("rename file");
    symlink(outside.join("f"), s.b("file")).expect("symlink file");

    // Lookups under the held directory go to the original directory.
    let f = rustix::fs::openat(&dir, "f", OFlags::RDONLY, Mode::empty()).expect("openat f");
    let mut content = String::new();
    File::from(f).read_to_string(&mut content).expect("read");
    assert_eq!(content, "inside");
    let created = rustix::fs::openat(
        &dir,
        "new",
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
        Mode::from_raw_mode(0o644),
    )
    .expect("create");
    File::from(created).write_all(b"new").expect("write");
    rustix::fs::mkdirat(&dir, "sub", Mode::from_raw_mode(0o755)).expect("mkdirat");
    rustix::fs::unlinkat(&dir, "f", AtFlags::empty()).expect("unlinkat");
    assert_eq!(fs::read(s.b("d.orig/new")).expect("created inside"), b"new");
    assert!(s.b("d.orig/sub").is_dir() && !s.b("d.orig/f").exists());
    assert!(
        !outside.join("new").exists() && !outside.join("sub").exists(),
        "created outside the backing directory"
    );
    assert_eq!(fs::read(outside.join("f")).expect("outside f"), b"outside");

    // The open file still reads, and its xattrs are, the original's.
    let mut content = String::new();
    (&file).read_to_string(&mut content).expect("read");
    assert_eq!(content, "original file");
    let mut buf = [0u8; 16];
    let n = rustix::fs::fgetxattr(&file, "user.which", &mut buf[..]).expect("fgetxattr");
    assert_eq!(&buf[..n], b"original");
    rustix::fs::fsetxattr(&file, "user.set", b"1", XattrFlags::empty()).expect("fsetxattr");
    assert_eq!(
        user_xattrs(&s.b("file.orig"), false),
        vec!["user.set".to_string(), "user.which".to_string()]
    );
    assert_eq!(
        user_xattrs(&outside.join("f"), false),
        vec!["user.which".to_string()]
    );
    fs::set_permissions(outside.join("f"), fs::Permissions::from_mode(0o644)).expect("chmod");
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .expect("fchmod");
    assert_eq!(
        fs::metadata(outside.join("f")).expect("stat").mode() & 0o777,
        0o644
    );
    assert_eq!(
        fs::metadata(s.b("file.orig")).expect("stat").mode() & 0o777,
        0o600
    );

    // A fresh lookup of the swapped names finds symlinks, presented as such.
    assert!(
        fs::symlink_metadata(m.p("d"))
            .expect("lstat d")
            .file_type()
            .is_symlink()
    );
    assert!(
        fs::symlink_metadata(m.p("file"))
            .expect("lstat file")
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_symlinked_tree_store_does_not_make_the_daemon_write_outside() {
    // A backing directory's owner can plant `.fsverity-fuse` as a symlink to any
    // directory. The daemon (root) must not follow it and create tree files there.
    require_fuse!();
    let s = Scratch::new();
    let elsewhere = s.dir.path().join("trees-elsewhere");
    let outside = s.dir.path().join("outside-store");
    fs::create_dir(&outside).expect("mkdir outside");
    let content = data(300_000, 8);
    s.write("f", &content);
    // Enable with the tree kept away from the backing directory: the mount has to
    // rebuild it, which is when it writes into its store.
    s.enable(
        &["f"],
        &["--tree-dir", elsewhere.to_str().expect("utf-8 path")],
    );
    symlink(&outside, s.b(".fsverity-fuse")).expect("plant symlink");
    match std::panic::catch_unwind(|| s.mount(&[])) {
        Ok(m) => {
            assert!(fs::read(m.p("f")).expect("verified read") == content);
        }
        Err(_) => eprintln!("the mount refused the symlinked store (acceptable)"),
    }
    let written: Vec<_> = fs::read_dir(&outside)
        .expect("readdir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(
        written.is_empty(),
        "the daemon wrote outside the backing directory through a symlinked store: {written:?}"
    );
}

#[test]
fn the_tree_store_name_and_metadata_xattr_cannot_be_claimed_through_the_mount() {
    // Whoever uses the mount cannot plant anything at the store's name (a symlink
    // there would redirect the daemon) nor forge verity metadata on a file.
    require_fuse!();
    let s = Scratch::new();
    s.write("plain", b"plain");
    fs::create_dir(s.b("dir")).expect("mkdir");
    let m = s.mount(&[]);
    let store = m.p(".fsverity-fuse");
    let rustix_err = |r: rustix::io::Result<()>| r.map_err(std::io::Error::from);
    let attempts: Vec<(&str, std::io::Result<()>)> = vec![
        ("create", File::create(&store).map(drop)),
        ("mkdir", fs::create_dir(&store)),
        ("symlink", symlink("/", &store)),
        ("link", fs::hard_link(m.p("plain"), &store)),
        ("rename onto", fs::rename(m.p("dir"), &store)),
        (
            "mkfifo",
            rustix_err(rustix::fs::mknodat(
                rustix::fs::CWD,
                &store,
                rustix::fs::FileType::Fifo,
                Mode::from_raw_mode(0o600),
                0,
            )),
        ),
        (
            "set the metadata xattr",
            rustix_err(rustix::fs::setxattr(
                m.p("plain"),
                "user.fsverity-fuse",
                &[0u8; 256],
                XattrFlags::empty(),
            )),
        ),
    ];
    for (what, result) in attempts {
        let err = result.expect_err(what);
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{what}: {err}");
    }
    let store_in_backing = fs::symlink_metadata(s.b(".fsverity-fuse")).expect("the mount's store");
    assert!(store_in_backing.is_dir(), "the store was replaced");
    assert!(s.b("dir").is_dir() && s.b("plain").is_file());
    let mut buf = [0u8; 8];
    assert!(rustix::fs::getxattr(s.b("plain"), "user.fsverity-fuse", &mut buf[..]).is_err());
    // The same names one level down are ordinary.
    fs::create_dir(m.p("dir/.fsverity-fuse")).expect("mkdir in a subdirectory");
}
