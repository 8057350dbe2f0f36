//! Mounting the way administrators do: the `mount.fuse.fsverity-fuse` helper
//! link, fuse3's `mount.fuse3` (which runs `fsverity-fuse` by name), mount(8)
//! with `-t fuse.fsverity-fuse` and with an fstab line. Each test says which of
//! these paths it exercises, and checks it by the daemon's argv[0].
//!
//! mount(8) only looks for helpers in /sbin (then /sbin/fs.d, /sbin/fs) and
//! clears PATH before running them, so `mount.fuse3` finds `fsverity-fuse` only
//! in sh's default PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:...). The
//! mount(8) tests therefore run in a private mount namespace (`unshare
//! --mount`) where scripts/install.sh's staged /usr/local/bin and /sbin are
//! bind-mounted over the real ones: the host's directories are never touched.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::install::stage;
use super::support::{
    Answer, Cleanup, Op, PATIENCE, Script, ScriptRun, bin, fixtures, mounts_at, proc_mounts_entry,
    processes_mentioning, scratch, sh_quote, tool, wait_for_no_process,
};
use crate::mount::harness::{Scratch, is_mounted, require_fuse};

/// A directory with `mount.fuse.fsverity-fuse` and `fsverity-fuse` links to
/// the binary under test.
fn link_dir(dir: &Path) -> PathBuf {
    let links = dir.join("bin");
    fs::create_dir(&links).expect("mkdir bin");
    for name in ["mount.fuse.fsverity-fuse", "fsverity-fuse"] {
        std::os::unix::fs::symlink(bin(), links.join(name)).expect("symlink");
    }
    links
}

/// The argv[0] of the fsverity-fuse daemons among `answer`'s processes (the
/// script's own sh and unshare mention the same paths).
fn daemons(answer: &Answer) -> Vec<String> {
    let Answer::Processes(argv0) = answer else {
        panic!("expected processes, got {answer:?}")
    };
    argv0
        .iter()
        .filter(|a| a.contains("fsverity-fuse"))
        .cloned()
        .collect()
}

/// Checks a live helper-started mount from the host: /proc/mounts names the
/// type and the backing directory, the file reads back, and exactly one daemon
/// runs, started as `argv0`. Then `umount` must end that daemon.
#[track_caller]
fn check_live_then_umount(s: &Scratch, good: &[u8], argv0: &str) {
    // The helper returned: the mount must be live now, without polling.
    assert!(
        is_mounted(&s.mnt()),
        "the helper returned before the mount was live"
    );
    assert_eq!(
        fs::read(s.mnt().join("good")).expect("read through the mount"),
        good
    );
    let (source, fstype, options) = proc_mounts_entry(&s.mnt()).expect("in /proc/mounts");
    assert_eq!(
        (fstype.as_str(), Path::new(&source)),
        ("fuse.fsverity-fuse", s.backing().as_path())
    );
    let opts: Vec<&str> = options.split(',').collect();
    assert!(
        opts.contains(&"ro") && opts.contains(&"allow_other"),
        "options: {options}"
    );
    let procs = processes_mentioning(&s.backing());
    assert_eq!(procs.len(), 1, "one daemon expected: {procs:?}");
    assert_eq!(procs[0].1[0], argv0, "which program became the daemon");

    let out = Command::new("umount")
        .arg(s.mnt())
        .output()
        .expect("umount");
    assert!(
        out.status.success(),
        "umount: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = wait_for_no_process(s.dir.path(), PATIENCE);
    assert!(
        left.is_empty(),
        "daemon still running after umount: {left:?}"
    );
    assert_eq!(mounts_at(&s.mnt()), 0);
}

#[test]
fn helper_link_run_as_mount8_would_daemonizes_returns_once_live_and_umount_ends_it() {
    require_fuse!();
    let s = scratch();
    let f = fixtures(&s, &[]);
    let links = link_dir(s.dir.path());
    let _cleanup = Cleanup::new(s.dir.path(), &[s.mnt()]);
    let helper = links.join("mount.fuse.fsverity-fuse");
    // mount(8)'s calling convention: SOURCE MOUNTPOINT -o OPTIONS.
    let out = Command::new(&helper)
        .arg(s.backing())
        .arg(s.mnt())
        .args(["-o", "ro,allow_other,nofail,x-systemd.automount"])
        .output()
        .expect("run the helper");
    assert!(
        out.status.success(),
        "helper: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_live_then_umount(&s, &f.good, &helper.to_string_lossy());
}

#[test]
fn mount_fuse3_run_directly_finds_fsverity_fuse_on_path() {
    require_fuse!();
    let Some(mount_fuse3) = tool("mount.fuse3", "fuse3") else {
        return;
    };
    let s = scratch();
    let f = fixtures(&s, &[]);
    let links = link_dir(s.dir.path());
    let _cleanup = Cleanup::new(s.dir.path(), &[s.mnt()]);
    let path = format!(
        "{}:{}",
        links.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(mount_fuse3)
        .arg(s.backing())
        .arg(s.mnt())
        .args(["-t", "fuse.fsverity-fuse", "-o", "ro,allow_other"])
        .env("PATH", path)
        .output()
        .expect("run mount.fuse3");
    assert!(
        out.status.success(),
        "mount.fuse3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_live_then_umount(&s, &f.good, "fsverity-fuse");
}

/// Runs `mount_cmd` with mount(8) in a private mount namespace whose
/// /usr/local/bin is the staged install's (in `dir/root`) and whose /sbin is
/// `sbin`, probes the mount as root (`extra` too) and as nobody, unmounts, and
/// checks no daemon is left.
pub(super) fn mount8_in_namespace(
    s: &Scratch, sbin: &Path, mount_cmd: &str, extra: &[(&str, Op)],
) -> ScriptRun {
    let root = s.dir.path().join("root");
    let _cleanup = Cleanup::new(s.dir.path(), &[]);
    let mnt = s.mnt();
    let mut script = Script::new(&["unshare", "--mount"]);
    script
        .on_exit(format!("umount --lazy {}", sh_quote(&mnt)))
        .run(format!(
            "mount --bind {} /usr/local/bin",
            sh_quote(root.join("usr/local/bin"))
        ))
        .run(format!("mount --bind {} /sbin", sh_quote(sbin)))
        .run(mount_cmd)
        .probe(
            "",
            &[
                ("mount", Op::MountInfo(mnt.clone())),
                ("good", Op::Read(mnt.join("good"))),
                ("processes", Op::Processes(s.backing())),
            ],
        )
        .probe("", extra)
        .probe(
            "setpriv --reuid=65534 --regid=65534 --clear-groups",
            &[("nobody", Op::Read(mnt.join("good")))],
        )
        .run(format!("umount {}", sh_quote(&mnt)));
    let run = script.execute();
    let left = wait_for_no_process(s.dir.path(), PATIENCE);
    assert!(
        left.is_empty(),
        "daemon left after umount in the namespace: {left:?}"
    );
    run
}

#[track_caller]
pub(super) fn check_namespace_mount(
    s: &Scratch, run: &ScriptRun, good: &[u8], argv0: &str, option: &str,
) {
    run.expect_success();
    let Answer::Mount {
        fstype,
        source,
        options,
    } = run.answer("mount")
    else {
        panic!("no mount: {:?}", run.answer("mount"))
    };
    assert_eq!(
        (fstype.as_str(), Path::new(source)),
        ("fuse.fsverity-fuse", s.backing().as_path())
    );
    assert!(
        options.split(',').any(|o| o == option),
        "'{option}' missing from {options}"
    );
    assert_eq!(run.answer("good"), &Answer::data(good));
    assert_eq!(run.answer("nobody"), &Answer::data(good), "allow_other");
    assert_eq!(daemons(run.answer("processes")), [argv0]);
}

#[test]
fn mount8_type_fuse_fsverity_fuse_runs_the_installed_sbin_helper_link() {
    require_fuse!();
    if tool("unshare", "util-linux").is_none() {
        return;
    }
    let s = scratch();
    let f = fixtures(&s, &[]);
    stage(&s.dir.path().join("root"), &[]);
    let cmd = format!(
        "mount -t fuse.fsverity-fuse -o ro,allow_other {} {}",
        sh_quote(s.backing()),
        sh_quote(s.mnt())
    );
    let run = mount8_in_namespace(&s, &s.dir.path().join("root/sbin"), &cmd, &[]);
    check_namespace_mount(&s, &run, &f.good, "/sbin/mount.fuse.fsverity-fuse", "ro");
}

#[test]
fn fstab_line_mounts_with_mount8_fstab_through_the_installed_helper_link() {
    require_fuse!();
    if tool("unshare", "util-linux").is_none() {
        return;
    }
    let s = scratch();
    let f = fixtures(&s, &[]);
    stage(&s.dir.path().join("root"), &[]);
    let fstab = s.dir.path().join("fstab");
    fs::write(
        &fstab,
        format!(
            "# fsverity-fuse test fstab\n{} {} fuse.fsverity-fuse ro,allow_other,nofail 0 0\n",
            s.backing().display(),
            s.mnt().display()
        ),
    )
    .expect("write fstab");
    let cmd = format!("mount --fstab {} {}", sh_quote(&fstab), sh_quote(s.mnt()));
    let run = mount8_in_namespace(&s, &s.dir.path().join("root/sbin"), &cmd, &[]);
    check_namespace_mount(
        &s,
        &run,
        &f.good,
        "/sbin/mount.fuse.fsverity-fuse",
        "allow_other",
    );
}

#[test]
fn mount8_without_the_helper_link_falls_back_to_mount_fuse3_and_the_default_path() {
    require_fuse!();
    let Some(mount_fuse3) = tool("mount.fuse3", "fuse3") else {
        return;
    };
    if tool("unshare", "util-linux").is_none() {
        return;
    }
    let s = scratch();
    let f = fixtures(&s, &[]);
    stage(&s.dir.path().join("root"), &[]);
    // An /sbin with only fuse3's helpers: no mount.fuse.fsverity-fuse.
    let sbin = s.dir.path().join("sbin-fuse3");
    fs::create_dir(&sbin).expect("mkdir");
    fs::copy(mount_fuse3, sbin.join("mount.fuse3")).expect("copy mount.fuse3");
    std::os::unix::fs::symlink("mount.fuse3", sbin.join("mount.fuse")).expect("symlink");
    let cmd = format!(
        "mount -t fuse.fsverity-fuse -o ro,allow_other {} {}",
        sh_quote(s.backing()),
        sh_quote(s.mnt())
    );
    let run = mount8_in_namespace(&s, &sbin, &cmd, &[]);
    check_namespace_mount(&s, &run, &f.good, "fsverity-fuse", "ro");
}

#[test]
fn daemonized_start_failures_exit_non_zero_with_a_message_and_leave_nothing() {
    require_fuse!();
    let s = scratch();
    fixtures(&s, &[]);
    let links = link_dir(s.dir.path());
    let _cleanup = Cleanup::new(s.dir.path(), &[s.mnt()]);
    let dir = s.dir.path();
    fs::write(dir.join("garbage.pem"), "not a key\n").expect("write garbage key");
    let (b, m) = (s.backing(), s.mnt());
    let path = |p: &Path| p.display().to_string();
    let cases: Vec<(&str, PathBuf, PathBuf, String, i32, String)> = vec![
        (
            "missing backing dir",
            dir.join("missing"),
            m.clone(),
            "ro".into(),
            1,
            path(&dir.join("missing")),
        ),
        (
            "missing mount point",
            b.clone(),
            dir.join("nomnt"),
            "ro".into(),
            1,
            path(&dir.join("nomnt")),
        ),
        (
            "unknown option",
            b.clone(),
            m.clone(),
            "ro,bogus".into(),
            2,
            "bogus".into(),
        ),
        (
            "bad on_corruption",
            b.clone(),
            m.clone(),
            "on_corruption=ignore".into(),
            2,
            "ignore".into(),
        ),
        (
            "unparsable trusted key",
            b.clone(),
            m.clone(),
            format!(
                "ro,trusted_key={},require_signatures",
                path(&dir.join("garbage.pem"))
            ),
            1,
            path(&dir.join("garbage.pem")),
        ),
        (
            "missing trusted key",
            b.clone(),
            m.clone(),
            format!("ro,trusted_key={}", path(&dir.join("absent.pem"))),
            1,
            path(&dir.join("absent.pem")),
        ),
        (
            "signatures without keys",
            b.clone(),
            m.clone(),
            "ro,require_signatures".into(),
            2,
            "trusted".into(),
        ),
    ];
    let helper = links.join("mount.fuse.fsverity-fuse");
    for (case, backing, mnt, options, code, message) in &cases {
        let out = Command::new(&helper)
            .arg(backing)
            .arg(mnt)
            .args(["-o", options])
            .output()
            .expect("run helper");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{case}: {stderr}");
        assert!(
            stderr.contains("error") && stderr.contains(message.as_str()),
            "{case}: {stderr}"
        );
        assert_eq!(mounts_at(mnt), 0, "{case}: a mount was left");
        let left = wait_for_no_process(dir, PATIENCE);
        assert!(left.is_empty(), "{case}: processes left: {left:?}");
    }

    // Through mount.fuse3 the daemon's message and failure reach the caller too.
    if let Some(mount_fuse3) = tool("mount.fuse3", "fuse3") {
        let out = Command::new(mount_fuse3)
            .arg(dir.join("missing"))
            .arg(&m)
            .args(["-t", "fuse.fsverity-fuse", "-o", "ro"])
            .env("PATH", format!("{}:/usr/bin:/bin", links.display()))
            .output()
            .expect("run mount.fuse3");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "mount.fuse3 succeeded: {stderr}");
        assert!(
            stderr.contains(&path(&dir.join("missing"))),
            "mount.fuse3: {stderr}"
        );
        assert_eq!(mounts_at(&m), 0);
        assert!(wait_for_no_process(dir, PATIENCE).is_empty());
    }
}

#[test]
fn mount8_passes_the_helpers_exit_code_and_message_through() {
    require_fuse!();
    if tool("unshare", "util-linux").is_none() {
        return;
    }
    let s = scratch();
    let root = s.dir.path().join("root");
    stage(&root, &[]);
    let _cleanup = Cleanup::new(s.dir.path(), &[]);
    let missing = s.dir.path().join("missing");
    for (source, options, code, message) in [
        (
            s.backing(),
            "ro,bogus",
            2,
            "unknown mount option 'bogus'".to_owned(),
        ),
        (missing.clone(), "ro", 1, missing.display().to_string()),
    ] {
        let run = Script::new(&["unshare", "--mount"])
            .run(format!(
                "mount --bind {} /usr/local/bin",
                sh_quote(root.join("usr/local/bin"))
            ))
            .run(format!(
                "mount --bind {} /sbin",
                sh_quote(root.join("sbin"))
            ))
            .run(format!(
                "exec mount -t fuse.fsverity-fuse -o {options} {} {}",
                sh_quote(&source),
                sh_quote(s.mnt())
            ))
            .execute();
        assert_eq!(run.code, Some(code), "{options}: {}", run.stderr);
        assert!(
            run.stderr.contains("fsverity-fuse: error: ") && run.stderr.contains(&message),
            "{}",
            run.stderr
        );
        let left = wait_for_no_process(s.dir.path(), PATIENCE);
        assert!(left.is_empty(), "{options}: processes left: {left:?}");
    }
}
