//! `--on-corruption`, one mount per mode: `eio` fails the read and keeps
//! serving, `log` serves the backing bytes and warns about it when the mount
//! starts, `abort` fails the read and then every later open and read of any
//! file, and the status says so.

use std::fs;
use std::process::Command;

use super::support::{Foreground, bin, fixtures, scratch, tampered};
use crate::mount::harness::require_fuse;
use crate::mount::support::errno;

fn status_json(mnt: &std::path::Path) -> serde_json::Value {
    let out = crate::util::run_bin(["status".as_ref(), mnt.as_os_str(), "--json".as_ref()]);
    out.expect_success();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("status --json parses");
    doc[mnt.to_string_lossy().as_ref()].clone()
}

#[test]
fn each_on_corruption_mode_does_what_it_says() {
    require_fuse!();
    for mode in ["eio", "log", "abort"] {
        let s = scratch();
        let f = fixtures(&s, &[]);
        let mut cmd = Command::new(bin());
        cmd.arg("mount")
            .arg("--ro")
            .arg(format!("--on-corruption={mode}"));
        cmd.arg(s.backing()).arg(s.mnt());
        let mut m = Foreground::start(cmd, &s.mnt(), s.dir.path());
        let p = |name: &str| s.mnt().join(name);
        let warned = m.log().contains("SERVED ANYWAY");
        assert_eq!(
            warned,
            mode == "log",
            "{mode}: start-up warning about serving bad blocks: {}",
            m.log()
        );
        assert_eq!(
            fs::read(p("good")).expect("good file before any corruption"),
            f.good,
            "{mode}"
        );

        let bad = fs::read(p("bad"));
        match (mode, &bad) {
            ("log", Ok(bytes)) => assert!(*bytes == tampered(&f), "log: not the backing bytes"),
            ("eio" | "abort", Err(e)) => assert_eq!(errno(e), libc::EIO, "{mode}: {e}"),
            _ => panic!(
                "{mode}: read of the corrupted file gave {:?}",
                bad.map(|b| b.len())
            ),
        }
        assert!(
            m.log().contains("FILE CORRUPTED"),
            "{mode}: corruption not logged: {}",
            m.log()
        );

        for file in ["good", "plain"] {
            let after = fs::read(p(file));
            if mode == "abort" {
                let e = after.expect_err("abort: later reads must fail");
                assert_eq!(errno(&e), libc::EIO, "abort: {file}: {e}");
            } else {
                assert!(
                    after.is_ok(),
                    "{mode}: {file} unreadable after a corruption: {after:?}"
                );
            }
        }

        let st = status_json(&s.mnt());
        assert_eq!(st["on_corruption"], mode);
        assert_eq!(st["aborted"], mode == "abort", "{mode}: {st}");
        assert!(
            st["counters"]["verification_failures"].as_u64() >= Some(1),
            "{mode}: {st}"
        );

        m.signal(rustix::process::Signal::TERM);
        let exit = m.wait();
        assert!(exit.success(), "{mode}: SIGTERM exit {exit}");
    }
}
