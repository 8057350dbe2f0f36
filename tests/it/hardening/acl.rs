//! POSIX ACLs through `--allow-other`: access through the mount is never wider
//! than direct access. Before the fix the kernel checked only the mode bits
//! (the filesystem did not declare ACL support) and the root daemon did the
//! rest, so a user an ACL denies could read, append to and enable the file.

use std::ffi::OsStr;
use std::process::Command;

use super::support::{NOBODY, as_nobody, metadata_xattr, open_up};
use crate::ioctl::tools::{Fsverity, program, strerror};
use crate::mount::harness::{Scratch, require_fuse};

fn setfacl(spec: &str, path: &std::path::Path) {
    let status = Command::new("setfacl")
        .args(["-m", spec])
        .arg(path)
        .status()
        .expect("run setfacl");
    assert!(status.success(), "setfacl -m {spec} {}", path.display());
}

#[test]
fn an_acl_denial_holds_through_the_mount() {
    require_fuse!();
    let Some(_) = program("/usr/bin/setfacl", "acl") else {
        return;
    };
    let Some(fsv) = Fsverity::find() else { return };
    let s = Scratch::new();
    open_up(&s.backing());
    open_up(&s.mnt());
    for name in ["denied", "read_only"] {
        s.write(name, b"secret\n");
        std::fs::set_permissions(
            s.b(name),
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )
        .expect("chmod 0666");
    }
    // Mode 0666 lets everyone write; the ACL takes it back from nobody.
    setfacl(&format!("u:{NOBODY}:---"), &s.b("denied"));
    setfacl(&format!("u:{NOBODY}:r--"), &s.b("read_only"));
    let m = s.mount(&["--allow-other"]);
    let sh = |script: &str, path: &std::path::Path| {
        as_nobody(
            "/bin/sh",
            &[
                OsStr::new("-c"),
                OsStr::new(script),
                OsStr::new("sh"),
                path.as_os_str(),
            ],
        )
    };
    for path in [s.b("denied"), m.p("denied")] {
        let read = sh("cat \"$1\"", &path);
        assert!(!read.status.success(), "nobody read {}", path.display());
        assert!(
            String::from_utf8_lossy(&read.stderr).contains("Permission denied"),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&read.stderr)
        );
        let append = sh("echo more >> \"$1\"", &path);
        assert!(
            !append.status.success(),
            "nobody appended to {}",
            path.display()
        );
    }
    assert_eq!(std::fs::read(s.b("denied")).expect("read"), b"secret\n");
    // Readable but not writable by ACL: the enable ioctl needs write access.
    let read = sh("cat \"$1\"", &m.p("read_only"));
    assert!(read.status.success(), "the ACL grants read");
    let enable = as_nobody(
        fsv.path().to_str().expect("utf-8"),
        &[OsStr::new("enable"), m.p("read_only").as_os_str()],
    );
    assert!(!enable.status.success(), "nobody enabled verity");
    let stderr = String::from_utf8_lossy(&enable.stderr);
    assert!(
        stderr.contains("FS_IOC_ENABLE_VERITY")
            && stderr.trim_end().ends_with(&strerror(libc::EACCES)),
        "{stderr}"
    );
    assert!(metadata_xattr(&s.b("read_only")).is_none());
    // The ACL is visible through the mount, as on the backing file.
    let out = Command::new("getfacl")
        .arg("--omit-header")
        .arg(m.p("denied"))
        .output()
        .expect("getfacl");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("user:nobody:---"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
