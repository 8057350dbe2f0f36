//! scripts/install.sh, staged into a temporary root with DESTDIR: what it lays
//! out, that running it twice changes nothing, and that it leaves systemctl
//! alone when systemd is not running (as here) or the install is staged.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::support::{bin, repo};
use crate::util::temp_dir;

/// Runs scripts/install.sh with `args` and `env`; returns (exit code, stderr).
fn install_sh(args: &[&str], env: &[(&str, &Path)]) -> (i32, String) {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/install.sh")).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run scripts/install.sh");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs install.sh into `root` with the test binary, asserting success.
pub(super) fn stage(root: &Path, env: &[(&str, &Path)]) {
    let mut env = env.to_vec();
    env.push(("DESTDIR", root));
    let (code, stderr) = install_sh(&["--binary", &bin().to_string_lossy()], &env);
    assert_eq!(code, 0, "install.sh failed: {stderr}");
}

/// Every entry under `root`: path -> (mode, symlink target or content).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).expect("read_dir").flatten() {
            let meta = fs::symlink_metadata(e.path()).expect("lstat");
            let what = if meta.file_type().is_symlink() {
                fs::read_link(e.path())
                    .expect("readlink")
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_dir() {
                todo.push(e.path());
                Vec::new()
            } else {
                fs::read(e.path()).expect("read")
            };
            let rel = e
                .path()
                .strip_prefix(root)
                .expect("under root")
                .to_path_buf();
            out.insert(rel, (meta.permissions().mode(), what));
        }
    }
    out
}

/// A `systemctl` that records being called, first on PATH.
fn fake_systemctl(dir: &Path) -> (PathBuf, PathBuf) {
    let bindir = dir.join("fakebin");
    fs::create_dir(&bindir).expect("mkdir");
    let marker = dir.join("systemctl-called");
    let script = bindir.join("systemctl");
    fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\n", marker.display()),
    )
    .expect("write fake systemctl");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = std::env::join_paths(std::iter::once(bindir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    (PathBuf::from(path), marker)
}

#[test]
fn install_sh_stages_binary_helper_link_and_units_and_a_rerun_changes_nothing() {
    let tmp = temp_dir("install");
    let root = tmp.path().join("root");
    let (path, marker) = fake_systemctl(tmp.path());
    stage(&root, &[("PATH", &path)]);
    let first = snapshot(&root);

    let binary = &first[Path::new("usr/local/bin/fsverity-fuse")];
    assert_eq!(binary.0 & 0o7777, 0o755, "binary mode");
    assert!(
        binary.1 == fs::read(bin()).expect("read test binary"),
        "installed binary differs"
    );
    let link = &first[Path::new("sbin/mount.fuse.fsverity-fuse")];
    assert_eq!(
        link.1, b"/usr/local/bin/fsverity-fuse",
        "helper link target"
    );
    for unit in ["srv-verified.mount", "fsverity-fuse-verified.service"] {
        let installed = &first[&Path::new("etc/systemd/system").join(unit)];
        assert_eq!(installed.0 & 0o7777, 0o644, "{unit} mode");
        let source = fs::read(repo().join("docs/systemd").join(unit)).expect("read unit");
        assert!(
            installed.1 == source,
            "{unit}: installed copy differs from docs/systemd"
        );
    }

    stage(&root, &[("PATH", &path)]);
    assert!(
        snapshot(&root) == first,
        "a second run changed the staged tree"
    );
    assert!(
        !marker.exists(),
        "install.sh ran systemctl for a staged install without systemd"
    );
}

#[test]
fn install_sh_honours_prefix_sbindir_and_unitdir() {
    let tmp = temp_dir("install-dirs");
    let root = tmp.path().join("root");
    stage(
        &root,
        &[
            ("PREFIX", Path::new("/opt/fsverity-fuse")),
            ("SBINDIR", Path::new("/usr/sbin")),
            ("UNITDIR", Path::new("/usr/lib/systemd/system")),
        ],
    );
    assert!(root.join("opt/fsverity-fuse/bin/fsverity-fuse").is_file());
    let link = fs::read_link(root.join("usr/sbin/mount.fuse.fsverity-fuse")).expect("helper link");
    assert_eq!(link, Path::new("/opt/fsverity-fuse/bin/fsverity-fuse"));
    let service =
        fs::read_to_string(root.join("usr/lib/systemd/system/fsverity-fuse-verified.service"))
            .expect("service installed into UNITDIR");
    let exec: Vec<&str> = service
        .lines()
        .filter(|l| l.starts_with("ExecStart="))
        .collect();
    assert_eq!(exec.len(), 1, "{exec:?}");
    assert!(
        exec[0].starts_with("ExecStart=/opt/fsverity-fuse/bin/fsverity-fuse mount "),
        "{exec:?}"
    );
}

#[test]
fn install_sh_rejects_unknown_arguments_and_missing_binaries() {
    let tmp = temp_dir("install-errors");
    let root = tmp.path().join("root");
    let env = [("DESTDIR", root.as_path())];
    for (args, code, message) in [
        (&["--bogus"][..], 2, "unknown argument '--bogus'"),
        (
            &["--binary", "/nonexistent/fsverity-fuse"],
            1,
            "/nonexistent/fsverity-fuse",
        ),
        (&["--binary"], 1, "--binary needs a path"),
    ] {
        let (got, stderr) = install_sh(args, &env);
        assert_eq!(got, code, "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert!(!root.exists(), "a failed install wrote files");
}
