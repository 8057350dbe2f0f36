//! Containers see a host mount through other users and namespaces. Emulated
//! with util-linux (no container engine here): another user (`setpriv`), a
//! rootless user+mount namespace (`unshare --user --map-root-user --mount` run
//! by nobody, as rootless Podman does), a private mount namespace with the
//! mount bind-mounted elsewhere (a `docker -v` volume), and mount propagation
//! into a namespace created before the mount (rslave vs private). Inside, the
//! guarantees hold: verified bytes, EIO for a corrupted file, EROFS on `--ro`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::support::{
    Answer, Cleanup, Fixtures, Op, PATIENCE, Script, ScriptRun, fixtures, mounts_at, scratch,
    sh_quote, tool,
};
use crate::mount::harness::{Scratch, require_fuse};

const AS_NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

/// The reads and writes every namespace test makes through `dir` (the mount
/// point as seen inside), labelled `{tag}:{what}`.
fn file_ops(tag: &str, dir: &Path) -> Vec<(String, Op)> {
    [
        ("good", Op::Read(dir.join("good"))),
        ("bad", Op::Read(dir.join("bad"))),
        ("plain", Op::Read(dir.join("plain"))),
        ("write", Op::Write(dir.join("new-file"))),
        ("status", Op::Status(dir.to_path_buf())),
    ]
    .into_iter()
    .map(|(what, op)| (format!("{tag}:{what}"), op))
    .collect()
}

/// Checks the answers of [`file_ops`] `tag` on a `--ro` mount.
#[track_caller]
fn check_guarantees(run: &ScriptRun, f: &Fixtures, tag: &str) {
    run.expect_success();
    let answer = |what: &str| run.answer(&format!("{tag}:{what}"));
    assert_eq!(
        answer("good"),
        &Answer::data(&f.good),
        "{tag}: verified bytes"
    );
    assert_eq!(
        answer("bad"),
        &Answer::Errno(libc::EIO),
        "{tag}: corrupted file"
    );
    assert_eq!(
        answer("plain"),
        &Answer::data(&f.plain),
        "{tag}: plain file"
    );
    assert_eq!(
        answer("write"),
        &Answer::Errno(libc::EROFS),
        "{tag}: --ro mount"
    );
    let Answer::Status(json) = answer("status") else {
        panic!("{tag}: status xattr unreadable: {:?}", answer("status"))
    };
    let st: serde_json::Value = serde_json::from_str(json).expect("status JSON");
    assert_eq!(st["read_only"], true, "{tag}: {st}");
}

#[track_caller]
fn check_mount_entry(answer: &Answer, s: &Scratch, what: &str) {
    let Answer::Mount { fstype, source, .. } = answer else {
        panic!("{what}: no mount: {answer:?}")
    };
    assert_eq!(
        (fstype.as_str(), Path::new(source)),
        ("fuse.fsverity-fuse", s.backing().as_path()),
        "{what}"
    );
}

#[test]
fn allow_other_lets_other_users_read_and_without_it_only_the_mounting_uid_can() {
    require_fuse!();
    if tool("setpriv", "util-linux").is_none() || tool("unshare", "util-linux").is_none() {
        return;
    }
    let s = scratch();
    let f = fixtures(&s, &[]);
    {
        let _m = s.mount(&["--ro", "--allow-other"]);
        let run = Script::new(&AS_NOBODY)
            .probe("", &file_ops("nobody", &s.mnt()))
            .execute();
        check_guarantees(&run, &f, "nobody");
    }
    let _m = s.mount(&["--ro"]);
    let run = Script::new(&AS_NOBODY)
        .probe("", &[("good", Op::Read(s.mnt().join("good")))])
        .execute();
    run.expect_success();
    assert_eq!(
        run.answer("good"),
        &Answer::Errno(libc::EACCES),
        "nobody without --allow-other"
    );
    // Root (the mounting uid) needs no --allow-other, even in another mount
    // namespace: a rootful container running as root reads the mount.
    let run = Script::new(&["unshare", "--mount"])
        .probe("", &[("good", Op::Read(s.mnt().join("good")))])
        .execute();
    assert_eq!(
        run.answer("good"),
        &Answer::data(&f.good),
        "root in a private mount namespace"
    );
}

#[test]
fn rootless_user_and_mount_namespace_reads_through_allow_other_and_a_bind_mount() {
    require_fuse!();
    if tool("setpriv", "util-linux").is_none() || tool("unshare", "util-linux").is_none() {
        return;
    }
    let s = scratch();
    let f = fixtures(&s, &[]);
    let vol = s.dir.path().join("volume");
    std::fs::create_dir(&vol).expect("mkdir volume");
    let _m = s.mount(&["--ro", "--allow-other"]);
    let mut wrapper = AS_NOBODY.to_vec();
    wrapper.extend(["unshare", "--user", "--map-root-user", "--mount"]);
    let run = Script::new(&wrapper)
        .probe("", &[("mount", Op::MountInfo(s.mnt()))])
        .probe("", &file_ops("userns", &s.mnt()))
        // Root of the user namespace may bind the mount elsewhere, as rootless
        // Podman does for a volume.
        .run(format!(
            "mount --bind {} {}",
            sh_quote(s.mnt()),
            sh_quote(&vol)
        ))
        .probe("", &[("volume", Op::MountInfo(vol.clone()))])
        .probe("", &file_ops("volume", &vol))
        .execute();
    check_mount_entry(run.answer("mount"), &s, "rootless namespace");
    check_guarantees(&run, &f, "userns");
    check_mount_entry(
        run.answer("volume"),
        &s,
        "bind mount in the rootless namespace",
    );
    check_guarantees(&run, &f, "volume");
}

#[test]
fn private_mount_namespace_with_the_mount_bound_elsewhere_like_a_container_volume() {
    require_fuse!();
    if tool("unshare", "util-linux").is_none() {
        return;
    }
    let s = scratch();
    let f = fixtures(&s, &[]);
    let vol = s.dir.path().join("volume");
    std::fs::create_dir(&vol).expect("mkdir volume");
    let _m = s.mount(&["--ro", "--allow-other"]);
    // A plain (read-write) bind: EROFS must come from the --ro mount itself.
    let run = Script::new(&["unshare", "--mount"])
        .run(format!(
            "mount --bind {} {}",
            sh_quote(s.mnt()),
            sh_quote(&vol)
        ))
        .probe("", &[("volume", Op::MountInfo(vol.clone()))])
        .probe("", &file_ops("volume", &vol))
        .execute();
    check_mount_entry(
        run.answer("volume"),
        &s,
        "bind mount in a private namespace",
    );
    check_guarantees(&run, &f, "volume");
    assert_eq!(mounts_at(&vol), 0, "the bind leaked out of the namespace");
}

/// A shell line that waits (at most 20 s) for `path` to exist.
fn sh_wait_for(path: &Path) -> String {
    format!(
        "i=0; while [ ! -e {} ] && [ $i -lt 1000 ]; do sleep 0.02; i=$((i+1)); done",
        sh_quote(path)
    )
}

/// Waits for `path` to exist.
#[track_caller]
fn wait_for(path: &Path) {
    let deadline = Instant::now() + PATIENCE;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `unshare --mount --propagation MODE`, which touches `ready-MODE`,
/// probes the mount point when `go` appears (`seen` labels), touches
/// `probed-MODE`, and probes it again when `go-again` appears (`after` labels).
fn waiting_namespace(s: &Scratch, mode: &str) -> std::process::Child {
    let d = s.dir.path();
    let mnt = s.mnt();
    let mut script = Script::new(&["unshare", "--mount", "--propagation", mode]);
    script
        .run(format!(
            "touch {}",
            sh_quote(d.join(format!("ready-{mode}")))
        ))
        .run(sh_wait_for(&d.join("go")))
        .probe(
            "",
            &[
                ("seen:mount", Op::MountInfo(mnt.clone())),
                ("seen:good", Op::Read(mnt.join("good"))),
            ],
        )
        .run(format!(
            "touch {}",
            sh_quote(d.join(format!("probed-{mode}")))
        ))
        .run(sh_wait_for(&d.join("go-again")))
        .probe("", &[("after:mount", Op::MountInfo(mnt.clone()))]);
    let child = script.spawn();
    wait_for(&d.join(format!("ready-{mode}")));
    child
}

#[test]
fn namespaces_made_before_the_mount_see_it_come_and_go_only_with_slave_propagation() {
    require_fuse!();
    if tool("unshare", "util-linux").is_none() {
        return;
    }
    let s = scratch();
    let f = fixtures(&s, &[]);
    let dir = s.dir.path().to_path_buf();
    // The host side of `bind-propagation=rslave`: the source must be on a
    // shared mount (systemd makes / shared; here / is private, so share the
    // scratch directory itself).
    let _shared = Cleanup::new(&dir, &[s.mnt(), dir.clone()]);
    for args in [
        &["--bind", dir.to_str().expect("utf-8 path")][..],
        &["--make-shared"],
    ] {
        let out = Command::new("mount")
            .args(args)
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let slave = waiting_namespace(&s, "slave");
    let private = waiting_namespace(&s, "private");

    // The mount appears after both namespaces exist, then goes away.
    let m = s.mount(&["--ro", "--allow-other"]);
    std::fs::write(dir.join("go"), b"").expect("signal the namespaces");
    wait_for(&dir.join("probed-slave"));
    wait_for(&dir.join("probed-private"));
    let exit = m.terminate();
    assert!(exit.success(), "daemon exit {exit}");
    std::fs::write(dir.join("go-again"), b"").expect("signal the namespaces");

    let slave = Script::collect(slave.wait_with_output().expect("wait slave"));
    let private = Script::collect(private.wait_with_output().expect("wait private"));
    slave.expect_success();
    private.expect_success();
    check_mount_entry(slave.answer("seen:mount"), &s, "slave namespace");
    assert_eq!(
        slave.answer("seen:good"),
        &Answer::data(&f.good),
        "slave namespace"
    );
    assert_eq!(
        slave.answer("after:mount"),
        &Answer::Errno(libc::ENOENT),
        "unmount not propagated"
    );
    let unseen = Answer::Errno(libc::ENOENT);
    assert_eq!(
        private.answer("seen:mount"),
        &unseen,
        "private namespace saw the mount"
    );
    assert_eq!(
        private.answer("seen:good"),
        &unseen,
        "private namespace read the mount"
    );
}

#[test]
fn a_private_copy_made_after_the_mount_keeps_the_daemon_serving_after_sigterm_until_it_ends() {
    require_fuse!();
    if tool("unshare", "util-linux").is_none() {
        return;
    }
    let s = scratch();
    let f = fixtures(&s, &[]);
    let dir = s.dir.path().to_path_buf();
    let mut cmd = Command::new(super::support::bin());
    cmd.arg("mount")
        .args(["--ro", "--allow-other"])
        .arg(s.backing())
        .arg(s.mnt());
    let mut fg = super::support::Foreground::start(cmd, &s.mnt(), &dir);
    // `docker run -v` with the default rprivate propagation: a copy of the
    // mount in the container's namespace, made while the mount exists.
    let container = waiting_namespace(&s, "private");
    fg.signal(rustix::process::Signal::TERM);
    let deadline = Instant::now() + PATIENCE;
    while mounts_at(&s.mnt()) > 0 {
        assert!(
            Instant::now() < deadline,
            "host mount still there after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Gone from the host, still served to the namespace's copy.
    std::fs::write(dir.join("go"), b"").expect("signal the namespace");
    wait_for(&dir.join("probed-private"));
    std::fs::write(dir.join("go-again"), b"").expect("signal the namespace");
    let container = Script::collect(container.wait_with_output().expect("wait namespace"));
    container.expect_success();
    check_mount_entry(container.answer("seen:mount"), &s, "the namespace's copy");
    assert_eq!(
        container.answer("seen:good"),
        &Answer::data(&f.good),
        "served after SIGTERM"
    );
    // The namespace is gone: so is the last mount, and the daemon exits.
    let status = fg.wait();
    assert!(status.success(), "daemon exit {status}: {}", fg.log());
}
