//! The tree store under attack by whoever can write the backing directory: a
//! FIFO planted where a tree belongs must not hang readers, the mount or the
//! offline tools; temporary files are never left behind by a killed enable,
//! and planted temporary names cannot make enables fail.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::support::{alive, metadata_xattr, temporaries, wait_until, within};
use crate::ioctl::tools::Fsverity;
use crate::mount::harness::require_fuse;
use crate::mount::support::{only_tree_file, scratch_with_store};
use crate::util::{bin, random_bytes, run_bin};

fn mkfifo(path: &Path) {
    let _ = fs::remove_file(path);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

#[test]
fn a_fifo_in_place_of_a_tree_hangs_neither_readers_nor_the_mount() {
    require_fuse!();
    let s = scratch_with_store();
    let size = 1 << 20;
    let content = random_bytes(size, 41);
    s.write("f", &content);
    s.write("plain", b"unrelated");
    s.enable(&["f"], &[]);
    // 256 hashes: two level-0 blocks and the root block.
    let tree = only_tree_file(&s, 3 * 4096);
    mkfifo(&tree);
    let m = s.mount(&["--threads", "2"]);
    // Several readers at once: with a blocking open, the first hung on the
    // FIFO and the others queued behind it until no request thread was left.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let path = m.p("f");
            std::thread::spawn(move || fs::read(path))
        })
        .collect();
    let got = within(
        "reads of a file whose tree is a FIFO",
        Duration::from_secs(30),
        move || {
            readers
                .into_iter()
                .map(|r| r.join().expect("reader thread"))
                .collect::<Vec<_>>()
        },
    );
    for r in got {
        assert!(r.expect("the tree is rebuilt from the data") == content);
    }
    let plain = m.p("plain");
    let other = within("an unrelated read", Duration::from_secs(10), move || {
        fs::read(plain)
    });
    assert_eq!(other.expect("read"), b"unrelated");
    assert!(
        fs::symlink_metadata(&tree).expect("stat tree").is_file(),
        "the rebuilt tree replaced the FIFO"
    );
    let out = within("status", Duration::from_secs(10), {
        let mnt = m.p("");
        move || run_bin([std::ffi::OsString::from("status"), mnt.into_os_string()])
    });
    out.expect_success();
    drop(m);
    // Offline tools open store files the same way.
    mkfifo(&tree);
    let backing = s.backing();
    let out = within("verify -r", Duration::from_secs(30), move || {
        run_bin([
            std::ffi::OsString::from("verify"),
            "-r".into(),
            backing.into_os_string(),
        ])
    });
    assert!(out.code <= 1, "verify: {}", out.stderr);
}

#[test]
fn a_killed_offline_enable_leaves_no_temporary_file() {
    require_fuse!();
    let s = scratch_with_store();
    // Large enough that hashing takes a while: the kill lands mid-build.
    let f = fs::File::create(s.b("big")).expect("create");
    let chunk = random_bytes(1 << 20, 42);
    for _ in 0..384 {
        std::io::Write::write_all(&mut &f, &chunk).expect("write");
    }
    drop(f);
    let mut child = Command::new(bin())
        .args(["enable", "--threads", "1"])
        .arg(s.b("big"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn enable");
    let pid = child.id();
    // The tree file is open once hashing has started.
    wait_until(
        "the enable to open its tree file",
        Duration::from_secs(30),
        || {
            fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|fds| {
                    fds.flatten().any(|fd| {
                        fs::read_link(fd.path())
                            .is_ok_and(|t| t.to_string_lossy().contains(".fsverity-fuse"))
                    })
                })
                .unwrap_or(true)
        },
    );
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    assert!(!alive(pid));
    assert_eq!(
        temporaries(&s.b(".fsverity-fuse")),
        Vec::<String>::new(),
        "a killed enable left a temporary tree behind"
    );
    assert!(
        metadata_xattr(&s.b("big")).is_none(),
        "the file stays plain"
    );
}

#[test]
fn planted_temporary_names_do_not_break_enables_and_stale_ones_are_removed() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch_with_store();
    let store = s.b(".fsverity-fuse");
    // A stale temporary of a process that no longer runs.
    let mut gone = Command::new("true").spawn().expect("spawn");
    let gone_pid = gone.id();
    gone.wait().expect("reap");
    let stale = format!(".tmp-{gone_pid}-0");
    fs::write(store.join(&stale), vec![0u8; 100_000]).expect("plant a stale temporary");
    for i in 0..3 {
        s.write(&format!("f{i}"), &random_bytes(300_000, 43 + i));
    }
    let m = s.mount(&[]);
    assert!(
        !store.join(&stale).exists(),
        "the stale temporary of a dead process is removed when the store is opened"
    );
    // Names a daemon that counts its temporaries would pick next, planted as
    // a file, a directory and a FIFO.
    let daemon = m.pid();
    fs::write(store.join(format!(".tmp-{daemon}-0")), b"x").expect("plant");
    fs::create_dir(store.join(format!(".tmp-{daemon}-1"))).expect("plant");
    mkfifo(&store.join(format!(".tmp-{daemon}-2")));
    for i in 0..3 {
        let path = m.p(&format!("f{i}"));
        fsv.enable_ok(&path, &[]);
        assert_eq!(fsv.measure(&path), fsv.digest(&[], &s.b(&format!("f{i}"))));
    }
}
