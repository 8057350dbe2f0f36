//! Resource use: one descriptor per open file (before the fix each open file
//! also pinned its inode's descriptor, and opens failed with EMFILE at half
//! the limit), and commands that end quietly on a closed pipe.

use std::fs::File;
use std::io::Read;
use std::process::{Command, Stdio};

use crate::mount::harness::require_fuse;
use crate::mount::support::scratch_with_store;
use crate::util::{bin, random_bytes};

#[test]
fn open_files_cost_one_descriptor_each() {
    require_fuse!();
    let s = scratch_with_store();
    let n = 200;
    let names: Vec<String> = (0..n).map(|i| format!("f{i:03}")).collect();
    for (i, name) in names.iter().enumerate() {
        s.write(name, &random_bytes(10_000, 80 + i as u64));
    }
    let half: Vec<&str> = names.iter().step_by(2).map(String::as_str).collect();
    s.enable(&half, &[]);
    // 200 open files under a limit of 256 descriptors.
    let m = s.mount_wrapped(&["prlimit", "--nofile=256:256"], &[]);
    let mut open: Vec<File> = names
        .iter()
        .map(|name| {
            File::open(m.p(name)).unwrap_or_else(|e| panic!("open {name} with {n} open: {e}"))
        })
        .collect();
    for (i, f) in open.iter_mut().enumerate() {
        let mut got = Vec::new();
        f.read_to_end(&mut got).expect("read");
        assert!(got == random_bytes(10_000, 80 + i as u64), "f{i:03}");
    }
    drop(open);
    drop(m);
}

#[test]
fn commands_end_quietly_on_a_closed_pipe() {
    let dir = crate::util::temp_dir("closed-pipe");
    for i in 0..2000 {
        std::fs::write(dir.path().join(format!("f{i}")), [i as u8]).expect("write");
    }
    // `digest` prints a line per file; `head -c1` closes the pipe after one byte.
    let mut digest = Command::new(bin())
        .arg("digest")
        .args((0..2000).map(|i| dir.path().join(format!("f{i}"))))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = digest.stdout.take().expect("stdout");
    let mut one = [0u8; 1];
    stdout.read_exact(&mut one).expect("one byte");
    drop(stdout);
    let out = digest.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.success()
            || std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
}
