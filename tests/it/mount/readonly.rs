//! A read-only mount (`--ro`): every modification fails with EROFS and changes
//! nothing, while reads of verity files are still verified.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use rustix::fs::XattrFlags;

use super::harness::require_fuse;
use super::support::{PAGE, data, errno, failing_pages, flip_byte, scratch_with_store};

/// Names, types, sizes, modes and contents under `root`, for "nothing changed".
fn listing(root: &Path) -> Vec<(String, u32, u64, Vec<u8>)> {
    let mut out: Vec<_> = fs::read_dir(root)
        .expect("readdir")
        .map(|e| {
            let p = e.expect("entry").path();
            let m = fs::symlink_metadata(&p).expect("lstat");
            let body = if m.is_file() {
                fs::read(&p).expect("read")
            } else {
                Vec::new()
            };
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                m.mode(),
                m.len(),
                body,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn modifications_fail_with_erofs_and_verity_reads_are_still_verified() {
    require_fuse!();
    let s = scratch_with_store();
    let verity = data(20 * PAGE as usize + 5, 31);
    s.write("v", &verity);
    s.write("plain", b"plain bytes");
    fs::create_dir(s.b("d")).expect("mkdir");
    s.enable(&["v"], &[]);
    flip_byte(&s.b("v"), 5 * PAGE + 100);
    let before = listing(&s.backing());
    let m = s.mount(&["--ro"]);
    let flags = rustix::fs::statvfs(m.p("")).expect("statvfs").f_flag;
    assert!(
        flags.contains(rustix::fs::StatVfsMountFlags::RDONLY),
        "{flags:?}"
    );

    let p = |name: &str| m.p(name);
    let rustix_err = |r: rustix::io::Result<()>| r.map_err(io::Error::from);
    let attempts: Vec<(&str, io::Result<()>)> = vec![
        ("create", File::create(p("new")).map(drop)),
        (
            "open plain for writing",
            OpenOptions::new().write(true).open(p("plain")).map(drop),
        ),
        (
            "open plain for appending",
            OpenOptions::new().append(true).open(p("plain")).map(drop),
        ),
        (
            "open verity for writing",
            OpenOptions::new().write(true).open(p("v")).map(drop),
        ),
        ("mkdir", fs::create_dir(p("d2"))),
        ("rmdir", fs::remove_dir(p("d"))),
        ("unlink", fs::remove_file(p("plain"))),
        ("rename", fs::rename(p("plain"), p("plain2"))),
        ("symlink", symlink("plain", p("l"))),
        ("link", fs::hard_link(p("plain"), p("h"))),
        (
            "chmod",
            fs::set_permissions(p("plain"), fs::Permissions::from_mode(0o600)),
        ),
        (
            "chown",
            rustix_err(rustix::fs::chown(
                p("plain"),
                Some(rustix::fs::Uid::from_raw(5)),
                None,
            )),
        ),
        (
            "setxattr",
            rustix_err(rustix::fs::setxattr(
                p("plain"),
                "user.x",
                b"1",
                XattrFlags::empty(),
            )),
        ),
        (
            "removexattr",
            rustix_err(rustix::fs::removexattr(p("plain"), "user.x")),
        ),
        (
            "mkfifo",
            rustix_err(rustix::fs::mknodat(
                rustix::fs::CWD,
                p("fifo"),
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o644),
                0,
            )),
        ),
    ];
    for (what, result) in attempts {
        let err = result.expect_err(what);
        assert_eq!(errno(&err), libc::EROFS, "{what}: {err}");
    }
    assert_eq!(fs::read(m.p("plain")).expect("read plain"), b"plain bytes");
    assert_eq!(failing_pages(&m.p("v"), &verity), [5].into());
    assert!(m.log().contains("FILE CORRUPTED"), "log: {}", m.log());
    drop(m);
    assert_eq!(
        listing(&s.backing()),
        before,
        "the backing directory changed"
    );
}
