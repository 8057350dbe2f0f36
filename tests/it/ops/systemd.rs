//! The units in docs/systemd. systemd is not running here (not PID 1), so
//! each unit is checked in the parts that can be run without it:
//! `systemd-analyze verify` (syntax, unit name vs Where=, ExecStart= paths);
//! the service's hardening creates no private mount namespace (which would hide
//! the mount); the service's ExecStartPre= and ExecStart= lines run as written,
//! under the unit's CapabilityBoundingSet= and NoNewPrivileges= (applied with
//! setpriv, as systemd applies them to a root service), with sd_notify; and the
//! mount unit's What=/Where=/Type=/Options= given to mount(8) as systemd does.
//! Not covered: the seccomp, cgroup and BPF settings (RestrictAddressFamilies=,
//! DevicePolicy=, IPAddressDeny=, ...), which only a running systemd applies.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::process::Signal;

use super::install::stage;
use super::mount_helper::{check_namespace_mount, mount8_in_namespace};
use super::support::{
    Answer, Foreground, Op, Script, bin, fixtures, keys, mounts_at, repo, scratch, sh_quote, tool,
};
use crate::mount::harness::{Scratch, is_mounted, require_fuse};
use crate::mount::support::{data, errno};

const SERVICE: &str = "fsverity-fuse-verified.service";
const MOUNT: &str = "srv-verified.mount";

/// A unit file as (section, key, value) lines, in order.
struct Unit {
    name: &'static str,
    entries: Vec<(String, String, String)>,
}

impl Unit {
    fn load(name: &'static str) -> Self {
        let path = repo().join("docs/systemd").join(name);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (mut section, mut entries) = (String::new(), Vec::new());
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            assert!(
                !line.ends_with('\\'),
                "{name}: continuation lines are not parsed here"
            );
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s.to_owned();
            } else {
                let (k, v) = line
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{name}: {line:?}"));
                entries.push((section.clone(), k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        Self { name, entries }
    }

    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    #[track_caller]
    fn one(&self, section: &str, key: &str) -> &str {
        match self.all(section, key)[..] {
            [v] => v,
            ref other => panic!(
                "{}: [{section}] {key}= set {} times",
                self.name,
                other.len()
            ),
        }
    }
}

/// Replaces the units' production paths by this test's.
fn localize(s: &Scratch, keys: &Path, text: &str) -> String {
    text.replace("/usr/local/bin/fsverity-fuse", &bin().to_string_lossy())
        .replace("/srv/backing", &s.backing().to_string_lossy())
        .replace("/srv/verified", &s.mnt().to_string_lossy())
        .replace("/etc/fsverity-fuse/keys", &keys.to_string_lossy())
}

#[test]
fn units_pass_systemd_analyze_verify_without_a_warning() {
    let Some(analyze) = tool("systemd-analyze", "systemd") else {
        return;
    };
    let tmp = crate::util::temp_dir("systemd-verify");
    let mut paths = Vec::new();
    for name in [MOUNT, SERVICE, "srv-app.mount"] {
        let text = fs::read_to_string(repo().join("docs/systemd").join(name)).expect("read unit");
        // ExecStart= must name an existing executable.
        let path = tmp.path().join(name);
        fs::write(
            &path,
            text.replace("/usr/local/bin/fsverity-fuse", &bin().to_string_lossy()),
        )
        .expect("write unit");
        paths.push(path);
    }
    let out = Command::new(analyze)
        .arg("verify")
        .args(&paths)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys and unparsable values are only warnings (exit 0): none allowed.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

/// Settings that give a service a private mount namespace (or, for
/// PrivateUsers=, take mount(2)'s capability away), from systemd.exec(5).
const NAMESPACING: &[&str] = &[
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateMounts",
    "PrivateUsers",
    "PrivateIPC",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectProc",
    "ProcSubset",
    "ReadOnlyPaths",
    "ReadWritePaths",
    "InaccessiblePaths",
    "ExecPaths",
    "NoExecPaths",
    "TemporaryFileSystem",
    "BindPaths",
    "BindReadOnlyPaths",
    "DynamicUser",
    "RootDirectory",
    "RootImage",
    "MountAPIVFS",
    "MountFlags",
    "LogNamespace",
    "RuntimeDirectory",
    "StateDirectory",
    "CacheDirectory",
    "LogsDirectory",
    "ConfigurationDirectory",
];

#[test]
fn service_runs_in_the_foreground_with_notify_and_no_private_mount_namespace() {
    let unit = Unit::load(SERVICE);
    for key in NAMESPACING {
        for v in unit.all("Service", key) {
            assert!(
                ["no", "false", "off", "0", ""].contains(&v),
                "{key}={v} gives the service its own mount namespace: the mount would be invisible"
            );
        }
    }
    // Since systemd 254, PrivateNetwork=yes implies PrivateMounts=yes unless disabled.
    if unit
        .all("Service", "PrivateNetwork")
        .iter()
        .any(|v| ["yes", "true", "on", "1"].contains(v))
    {
        assert_eq!(
            unit.all("Service", "PrivateMounts"),
            ["no"],
            "PrivateNetwork= needs PrivateMounts=no"
        );
    }
    assert_eq!(unit.one("Service", "Type"), "notify");
    assert_eq!(unit.one("Service", "NotifyAccess"), "main");
    assert_eq!(unit.one("Service", "Restart"), "on-failure");
    let exec: Vec<&str> = unit
        .one("Service", "ExecStart")
        .split_whitespace()
        .collect();
    assert_eq!(
        exec[..2],
        ["/usr/local/bin/fsverity-fuse", "mount"],
        "foreground form"
    );

    // The service and the mount unit describe the same mount.
    let mount = Unit::load(MOUNT);
    let (what, where_) = (mount.one("Mount", "What"), mount.one("Mount", "Where"));
    assert_eq!(exec[exec.len() - 2..], [what, where_]);
    assert_eq!(mount.one("Mount", "Type"), "fuse.fsverity-fuse");
    let mut as_flags: Vec<String> = mount
        .one("Mount", "Options")
        .split(',')
        .map(|o| match o.split_once('=') {
            Some((k, v)) => format!("--{}={v}", k.replace('_', "-")),
            None => format!("--{}", o.replace('_', "-")),
        })
        .collect();
    as_flags.sort();
    let mut flags: Vec<String> = exec[2..exec.len() - 2]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    flags.sort();
    assert_eq!(flags, as_flags, "ExecStart= flags vs Options=");
}

/// Bit numbers of the capabilities the unit may list (linux/capability.h).
fn capability_bit(name: &str) -> u32 {
    match name {
        "CAP_CHOWN" => 0,
        "CAP_DAC_OVERRIDE" => 1,
        "CAP_DAC_READ_SEARCH" => 2,
        "CAP_FOWNER" => 3,
        "CAP_FSETID" => 4,
        "CAP_SYS_ADMIN" => 21,
        "CAP_MKNOD" => 27,
        other => panic!("{other}: add its bit number to this table"),
    }
}

/// A field of /proc/PID/status.
fn proc_status(pid: u32, field: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .expect("field");
    line[field.len() + 1..].trim().to_owned()
}

/// The scratch directory of the service tests: `good` and `bad` signed with a
/// key whose public half is alone in `keys/`, `unsigned` a verity file without
/// a signature.
fn signed_scratch() -> (Scratch, super::support::Fixtures, PathBuf) {
    let s = scratch();
    let (private, keydir) = keys(s.dir.path());
    let f = fixtures(&s, &["--key", &private.to_string_lossy()]);
    s.write("unsigned", &data(8192, 7));
    s.enable(&["unsigned"], &[]);
    (s, f, keydir)
}

/// Runs an Exec*= line (localized) directly; `-` ignores its failure, as systemd does.
fn run_exec_line(line: &str) -> std::process::Output {
    let line = line.strip_prefix('-').unwrap_or(line);
    let argv: Vec<&str> = line.split_whitespace().collect();
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn service_exec_lines_serve_under_the_units_capabilities_and_stop_on_sigterm() {
    require_fuse!();
    if tool("setpriv", "util-linux").is_none() {
        return;
    }
    let unit = Unit::load(SERVICE);
    let (s, f, keydir) = signed_scratch();
    for pre in unit.all("Service", "ExecStartPre") {
        let out = run_exec_line(&localize(&s, &keydir, pre));
        assert!(
            pre.starts_with('-') || out.status.success(),
            "{pre}: {out:?}"
        );
    }

    let caps: Vec<&str> = unit
        .one("Service", "CapabilityBoundingSet")
        .split_whitespace()
        .collect();
    let mut setpriv = Command::new("setpriv");
    if unit.one("Service", "NoNewPrivileges") == "yes" {
        setpriv.arg("--no-new-privs");
    }
    let bounding: Vec<String> = caps
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    setpriv
        .arg(format!("--bounding-set=-all,{}", bounding.join(",")))
        .arg("--");
    setpriv.args(localize(&s, &keydir, unit.one("Service", "ExecStart")).split_whitespace());
    let mut fg = Foreground::spawn(setpriv, &s.mnt(), s.dir.path());

    assert_eq!(fg.next_notification(), "READY=1", "{}", fg.log());
    assert!(is_mounted(&s.mnt()), "READY=1 before the mount was live");
    let want: u64 = caps.iter().map(|c| 1u64 << capability_bit(c)).sum();
    let eff = u64::from_str_radix(&proc_status(fg.pid(), "CapEff"), 16).expect("CapEff");
    assert_eq!(
        eff, want,
        "effective capabilities {eff:#x}: not the unit's set"
    );
    assert_eq!(proc_status(fg.pid(), "NoNewPrivs"), "1");

    assert_eq!(fs::read(s.mnt().join("good")).expect("signed file"), f.good);
    let e = fs::read(s.mnt().join("bad")).expect_err("corrupted");
    assert_eq!(errno(&e), libc::EIO, "{e}");
    let e = fs::read(s.mnt().join("unsigned")).expect_err("unsigned file under require-signatures");
    assert_eq!(errno(&e), libc::EACCES, "{e}");
    let run = Script::new(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ])
    .probe("", &[("nobody", Op::Read(s.mnt().join("good")))])
    .execute();
    assert_eq!(
        run.answer("nobody"),
        &Answer::data(&f.good),
        "--allow-other"
    );

    fg.signal(Signal::TERM);
    assert_eq!(fg.next_notification(), "STOPPING=1");
    let status = fg.wait();
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        fg.log()
    );
    assert_eq!(mounts_at(&s.mnt()), 0);
}

#[test]
fn a_killed_daemons_dead_mount_is_cleared_by_the_units_exec_start_pre() {
    require_fuse!();
    let unit = Unit::load(SERVICE);
    let (s, f, keydir) = signed_scratch();
    let mut plain = Command::new(bin());
    plain.arg("mount").arg("--ro").arg(s.backing()).arg(s.mnt());
    let mut fg = Foreground::start(plain, &s.mnt(), s.dir.path());
    fg.signal(Signal::KILL);
    assert!(!fg.wait().success());
    assert_eq!(mounts_at(&s.mnt()), 1, "a killed daemon leaves its mount");
    let e = fs::metadata(s.mnt()).expect_err("a dead FUSE mount");
    assert_eq!(errno(&e), libc::ENOTCONN, "{e}");

    let pre = unit.all("Service", "ExecStartPre");
    assert!(!pre.is_empty(), "no ExecStartPre= to clear a dead mount");
    for line in pre {
        run_exec_line(&localize(&s, &keydir, line));
    }
    assert_eq!(mounts_at(&s.mnt()), 0, "ExecStartPre= left the dead mount");
    let exec = localize(&s, &keydir, unit.one("Service", "ExecStart"));
    let argv: Vec<&str> = exec.split_whitespace().collect();
    let mut again = Command::new(argv[0]);
    again.args(&argv[1..]);
    let restarted = Foreground::start(again, &s.mnt(), s.dir.path());
    assert_eq!(
        fs::read(s.mnt().join("good")).expect("read after restart"),
        f.good
    );
    drop(restarted);
}

#[test]
fn mount_unit_given_to_mount8_as_systemd_does_mounts_with_its_options() {
    require_fuse!();
    if tool("unshare", "util-linux").is_none() {
        return;
    }
    let unit = Unit::load(MOUNT);
    let (s, f, keydir) = signed_scratch();
    stage(&s.dir.path().join("root"), &[]);
    // systemd runs: mount WHAT WHERE -t TYPE -o OPTIONS
    let field = |k: &str| sh_quote(localize(&s, &keydir, unit.one("Mount", k)));
    let cmd = format!(
        "mount {} {} -t {} -o {}",
        field("What"),
        field("Where"),
        field("Type"),
        field("Options")
    );
    let run = mount8_in_namespace(
        &s,
        &s.dir.path().join("root/sbin"),
        &cmd,
        &[("unsigned", Op::Read(s.mnt().join("unsigned")))],
    );
    check_namespace_mount(
        &s,
        &run,
        &f.good,
        "/sbin/mount.fuse.fsverity-fuse",
        "allow_other",
    );
    assert_eq!(
        run.answer("unsigned"),
        &Answer::Errno(libc::EACCES),
        "require_signatures"
    );
}
