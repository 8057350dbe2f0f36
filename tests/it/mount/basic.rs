//! The essentials: verified reads, tamper detection, immutability, clean exit.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use super::harness::{Scratch, is_mounted, require_fuse};

fn data(len: usize, seed: u64) -> Vec<u8> {
    crate::util::random_bytes(len, seed)
}

#[test]
fn verified_file_reads_back_and_tampering_fails_with_eio() {
    require_fuse!();
    let s = Scratch::new();
    let content = data(300_000, 7);
    s.write("f", &content);
    s.write("plain", b"plain data");
    s.enable(&["f"], &[]);
    let m = s.mount(&[]);
    assert_eq!(fs::read(m.p("f")).expect("read verity file"), content);
    assert_eq!(fs::read(m.p("plain")).expect("read plain"), b"plain data");
    let status = m.unmount();
    assert!(status.success(), "daemon exit: {status}");

    // Flip a byte in block 40 of the backing file; mount afresh (no cached pages).
    let f = OpenOptions::new()
        .write(true)
        .open(s.b("f"))
        .expect("open backing");
    f.write_all_at(&[content[40 * 4096 + 3] ^ 1], 40 * 4096 + 3)
        .expect("tamper");
    let m = s.mount(&[]);
    let mut file = fs::File::open(m.p("f")).expect("open");
    let mut buf = vec![0u8; 4096];
    file.seek(SeekFrom::Start(40 * 4096)).expect("seek");
    let err = file
        .read_exact(&mut buf)
        .expect_err("corrupt block must fail");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // Neighbouring blocks still read correctly.
    file.seek(SeekFrom::Start(41 * 4096)).expect("seek");
    file.read_exact(&mut buf).expect("good block");
    assert_eq!(buf, content[41 * 4096..42 * 4096]);
    assert!(m.log().contains("FILE CORRUPTED"), "log: {}", m.log());
}

#[test]
fn verity_files_are_immutable_but_can_be_renamed_and_chmodded() {
    require_fuse!();
    let s = Scratch::new();
    s.write("f", &data(10_000, 1));
    s.enable(&["f"], &[]);
    let m = s.mount(&[]);
    for (what, opts) in [
        ("O_WRONLY", OpenOptions::new().write(true).clone()),
        ("O_RDWR", OpenOptions::new().read(true).write(true).clone()),
        ("O_APPEND", OpenOptions::new().append(true).clone()),
        (
            "O_TRUNC",
            OpenOptions::new().write(true).truncate(true).clone(),
        ),
    ] {
        let err = opts.open(m.p("f")).expect_err(what);
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{what}: {err}");
    }
    let err = fs::File::open(m.p("f"))
        .and_then(|f| f.set_len(3))
        .expect_err("truncate");
    assert!(
        matches!(
            err.raw_os_error(),
            Some(libc::EPERM) | Some(libc::EINVAL) | Some(libc::EBADF)
        ),
        "{err}"
    );
    let out = std::process::Command::new("truncate")
        .arg("-s3")
        .arg(m.p("f"))
        .output()
        .expect("truncate(1)");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{out:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(m.p("f"), fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::rename(m.p("f"), m.p("g")).expect("rename");
    fs::hard_link(m.p("g"), m.p("h")).expect("link");
    assert_eq!(fs::read(m.p("h")).expect("read link"), data(10_000, 1));
    fs::remove_file(m.p("g")).expect("unlink");
    assert_eq!(
        fs::metadata(s.b("h"))
            .expect("backing")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn tree_store_and_metadata_xattr_are_invisible() {
    require_fuse!();
    let s = Scratch::new();
    fs::create_dir(s.b(".fsverity-fuse")).expect("store");
    s.write("f", &data(100_000, 2));
    s.enable(&["f"], &[]);
    let m = s.mount(&[]);
    let names: Vec<_> = fs::read_dir(m.p(""))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    let err = fs::metadata(m.p(".fsverity-fuse")).expect_err("hidden");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = fs::create_dir(m.p(".fsverity-fuse")).expect_err("reserved");
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    let err = rustix::fs::getxattr(m.p("f"), "user.fsverity-fuse", &mut [0u8; 512][..])
        .expect_err("hidden xattr");
    assert_eq!(err, rustix::io::Errno::NODATA);
    let err = rustix::fs::removexattr(m.p("f"), "user.fsverity-fuse").expect_err("untouchable");
    assert_eq!(err, rustix::io::Errno::PERM);
}

#[test]
fn sigterm_unmounts_and_exits_zero() {
    require_fuse!();
    let s = Scratch::new();
    let m = s.mount(&[]);
    let status = m.terminate();
    assert!(status.success(), "{status}");
    assert!(!is_mounted(&s.mnt()));
}

#[test]
fn more_inodes_than_descriptors_stay_reachable() {
    // The daemon may hold 256 descriptors: it must close idle inode descriptors
    // and reopen them by handle, also when the kernel looks entries up again
    // (attribute timeout 0) and when it opens inodes it still caches.
    require_fuse!();
    let s = Scratch::new();
    let names: Vec<String> = (0..1500).map(|i| format!("d{}/f{i}", i % 10)).collect();
    for (i, n) in names.iter().enumerate() {
        s.write(n, &data(2 * 4096 + i, i as u64));
    }
    let verity: Vec<&str> = names.iter().step_by(3).map(String::as_str).collect();
    s.enable(&verity, &[]);
    let m = s.mount_wrapped(&["prlimit", "--nofile=256:256"], &["--attr-timeout", "0"]);
    for round in 0..2 {
        for (i, n) in names.iter().enumerate() {
            let got = fs::read(m.p(n)).unwrap_or_else(|e| panic!("round {round}, {n}: {e}"));
            assert_eq!(got, data(2 * 4096 + i, i as u64), "round {round}, {n}");
        }
    }
    let log = m.log();
    assert!(!log.contains("Too many open files"), "{log}");
}
