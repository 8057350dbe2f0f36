//! The Debian package, installed on this machine for real: `scripts/package.sh`
//! builds it (release build, reused when up to date), `dpkg -i` installs it,
//! mount(8) mounts with `-t fuse.fsverity-fuse` through the installed /sbin
//! helper and a verity file reads back (a tampered one fails with EIO), man(1)
//! renders every page, bash, zsh and fish load the completions from their
//! standard directories, and `dpkg -r` removes every path the package
//! installed and leaves the backing directory alone.
//!
//! Installing touches the host, so one test does all of it, holding a lock
//! against concurrent runs; a package left by an earlier run is removed first,
//! and a guard runs `dpkg -r` in `Drop` even when the test fails. Every tool it
//! needs is required under CI=true (see [`tool`]).
//!
//! Also here, without installing anything: the crate `cargo package` would
//! publish, and the man pages' errnos against docs/SEMANTICS.md.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::support::{
    Cleanup, PATIENCE, bin, fixtures, mounts_at, proc_mounts_entry, processes_mentioning, repo,
    scratch, tool, wait_for_no_process,
};
use crate::mount::harness::{Scratch, is_mounted, require_fuse};
use crate::util::temp_dir;

/// The package's name (and the binary's).
const PACKAGE: &str = "fsverity-fuse";

/// Runs `cmd`, failing the test with its output unless it succeeds.
#[track_caller]
fn check(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("can't run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs dpkg with `args`, waiting (up to two minutes) while another package
/// manager holds dpkg's lock.
#[track_caller]
fn dpkg(args: &[&str]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = Command::new("dpkg")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("run dpkg");
        let locked = text(&out.stderr).contains("lock");
        if out.status.success() || !locked || Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// True if dpkg says the package is installed.
fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", PACKAGE])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout == b"installed")
}

/// True if dpkg knows the package at all: installed, or removed with its
/// maintainer scripts kept for a purge ("config-files").
fn known() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", PACKAGE])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty() && o.stdout != b"not-installed")
}

#[track_caller]
fn run_dpkg(args: &[&str]) {
    let out = dpkg(args);
    assert!(
        out.status.success(),
        "dpkg {}: {}",
        args.join(" "),
        text(&out.stderr)
    );
}

/// Removes and purges the package in `Drop` unless the test already did: the
/// host is never left with it installed, nor with its remains in dpkg's
/// database.
#[derive(Debug)]
struct InstalledPackage;

impl Drop for InstalledPackage {
    fn drop(&mut self) {
        if known() {
            let out = dpkg(&["--purge", PACKAGE]);
            if !out.status.success() {
                eprintln!(
                    "cleanup: dpkg --purge {PACKAGE} failed: {}",
                    text(&out.stderr)
                );
            }
        }
    }
}

/// An exclusive lock held while this test owns the host's package state.
fn host_lock() -> fs::File {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/lock/fsverity-fuse-packaging-test.lock")
        .expect("open the packaging test lock");
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .expect("lock the packaging test lock");
    file
}

/// Builds the package with scripts/package.sh; returns the .deb's path.
fn build_package() -> PathBuf {
    let started = Instant::now();
    check(Command::new("bash").arg(repo().join("scripts/package.sh")));
    eprintln!("scripts/package.sh took {:.1?}", started.elapsed());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let arch = text(&check(Command::new("dpkg").arg("--print-architecture")).stdout);
    let deb = repo().join(target).join(format!(
        "debian/{PACKAGE}_{}-1_{}.deb",
        env!("CARGO_PKG_VERSION"),
        arch.trim()
    ));
    assert!(deb.is_file(), "{} was not built", deb.display());
    deb
}

/// The paths a .deb holds (`dpkg-deb -c`), absolute.
fn package_paths(deb: &Path) -> BTreeSet<PathBuf> {
    let listing = text(&check(Command::new("dpkg-deb").arg("-c").arg(deb)).stdout);
    listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| Path::new("/").join(p.trim_start_matches("./")))
        .filter(|p| p != Path::new("/"))
        .collect()
}

/// True if `p` exists, without following a final symlink.
fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// Every entry below `root` with its content (symlink target; nothing for
/// directories) and mode.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).expect("read_dir").flatten() {
            let meta = fs::symlink_metadata(e.path()).expect("lstat");
            let content = if meta.is_dir() {
                todo.push(e.path());
                Vec::new()
            } else if meta.file_type().is_symlink() {
                fs::read_link(e.path())
                    .expect("readlink")
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                fs::read(e.path()).expect("read")
            };
            out.insert(e.path(), (meta.permissions().mode(), content));
        }
    }
    out
}

/// The names of the man pages the binary under test generates.
fn page_names() -> Vec<String> {
    let dir = temp_dir("man-pages");
    check(Command::new(bin()).arg("man").arg("--dir").arg(dir.path()));
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .expect("read man dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn debian_package_installs_mounts_through_mount8_renders_man_pages_loads_completions_and_removes_cleanly()
 {
    require_fuse!();
    for (program, package) in [
        ("dpkg", "dpkg"),
        ("dpkg-deb", "dpkg"),
        ("cargo", "rustup"),
        ("man", "man-db"),
        ("bash", "bash"),
        ("zsh", "zsh"),
        ("fish", "fish"),
        ("mount", "mount"),
        ("strip", "binutils"),
    ] {
        if tool(program, package).is_none() {
            return;
        }
    }
    if !Path::new("/usr/share/bash-completion/bash_completion").is_file() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "bash-completion is missing; CI=true forbids skipping"
        );
        eprintln!("skipping: bash-completion is missing");
        return;
    }
    let started = Instant::now();
    let _lock = host_lock();
    let deb = build_package();

    if known() {
        eprintln!("note: purging {PACKAGE}, installed before this test");
        run_dpkg(&["--purge", PACKAGE]);
    }
    let paths = package_paths(&deb);
    let existed: BTreeSet<&PathBuf> = paths.iter().filter(|p| exists(p)).collect();

    let guard = InstalledPackage;
    let out = dpkg(&["-i", &deb.to_string_lossy()]);
    assert!(out.status.success(), "dpkg -i: {}", text(&out.stderr));
    assert!(
        installed(),
        "dpkg -i succeeded but the package is not installed"
    );

    check_layout(&paths);
    let s = scratch();
    check_mount8_through_the_installed_helper(&s);
    check_man_pages();
    check_completions();

    // dpkg -r: every path the package brought is gone; what was there before
    // (shared directories such as /usr/bin) stays, and so does the backing
    // directory the installed daemon served.
    let backing = snapshot(&s.backing());
    run_dpkg(&["-r", PACKAGE]);
    assert!(!installed(), "still installed after dpkg -r");
    let left: Vec<&PathBuf> = paths
        .iter()
        .filter(|p| exists(p) != existed.contains(p))
        .collect();
    assert!(left.is_empty(), "dpkg -r left (or removed) these: {left:?}");
    assert!(
        snapshot(&s.backing()) == backing,
        "dpkg -r changed a backing directory"
    );
    // The removed package's postrm stays for a purge; purging leaves dpkg
    // with no trace of it.
    run_dpkg(&["--purge", PACKAGE]);
    assert!(!known(), "dpkg still knows {PACKAGE} after --purge");
    drop(guard);
    eprintln!("packaging test took {:.1?}", started.elapsed());
}

/// Where dpkg put everything, as the brief for the package says.
fn check_layout(paths: &BTreeSet<PathBuf>) {
    let binary = Path::new("/usr/bin/fsverity-fuse");
    let mode = fs::metadata(binary)
        .expect("installed binary")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "binary mode");
    assert_eq!(
        fs::read_link("/sbin/mount.fuse.fsverity-fuse").expect("helper link"),
        binary,
        "the mount(8) helper is a link to the binary"
    );
    // The binary says what it is: the same version and commit as the one under test.
    let short = |b: &Path| text(&check(Command::new(b).arg("-V")).stdout);
    assert_eq!(short(binary), short(bin()), "installed -V");
    let long = text(&check(Command::new(binary).arg("--version")).stdout);
    for fact in [
        "sha256",
        "sha512",
        "blake3",
        "Ed25519",
        "PKCS#7",
        "release profile",
    ] {
        assert!(long.contains(fact), "--version lacks {fact}:\n{long}");
    }

    // Every unit of docs/systemd.
    let units: Vec<String> = fs::read_dir(repo().join("docs/systemd"))
        .expect("read docs/systemd")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".mount") || n.ends_with(".service"))
        .collect();
    assert!(units.len() >= 2, "units: {units:?}");
    for unit in &units {
        let installed = Path::new("/usr/lib/systemd/system").join(unit);
        let content = fs::read_to_string(&installed).expect("unit installed");
        assert!(
            !content.contains("/usr/local/bin"),
            "{unit} names /usr/local/bin"
        );
        // Installed, not enabled: no .wants/.requires link to it under /etc.
        let enabled = Command::new("find")
            .args(["/etc/systemd", "-path", "*.wants/*", "-name", unit, "-o"])
            .args(["-path", "*.requires/*", "-name", unit])
            .output()
            .expect("find");
        assert!(
            enabled.stdout.is_empty(),
            "{unit} enabled: {}",
            text(&enabled.stdout)
        );
    }
    let service = fs::read_to_string("/usr/lib/systemd/system/fsverity-fuse-verified.service")
        .expect("service");
    assert!(
        service
            .lines()
            .any(|l| l.starts_with("ExecStart=/usr/bin/fsverity-fuse mount ")),
        "{service}"
    );
    for name in page_names() {
        let page = Path::new("/usr/share/man/man8").join(format!("{name}.gz"));
        assert!(
            paths.contains(&page),
            "{} not in the package",
            page.display()
        );
        assert!(page.is_file(), "{} not installed", page.display());
    }
    for file in [
        "/usr/share/bash-completion/completions/fsverity-fuse",
        "/usr/share/zsh/vendor-completions/_fsverity-fuse",
        "/usr/share/fish/vendor_completions.d/fsverity-fuse.fish",
        "/usr/share/doc/fsverity-fuse/README.md",
        "/usr/share/doc/fsverity-fuse/copyright",
        "/usr/share/doc/fsverity-fuse/docs/SEMANTICS.md",
    ] {
        let len = fs::metadata(file).map_or(0, |m| m.len());
        assert!(len > 0, "{file} missing or empty");
    }
    let depends =
        text(&check(Command::new("dpkg-query").args(["-W", "-f=${Depends}", PACKAGE])).stdout);
    assert!(
        depends.contains("fuse3") && depends.contains("libc6"),
        "Depends: {depends}"
    );
}

/// `mount -t fuse.fsverity-fuse BACKING MNT -o ro` on the host runs the
/// installed /sbin helper (mount(8) clears PATH and looks only in /sbin).
fn check_mount8_through_the_installed_helper(s: &Scratch) {
    let f = fixtures(s, &[]);
    let _cleanup = Cleanup::new(s.dir.path(), &[s.mnt()]);
    check(
        Command::new("mount")
            .args(["-t", "fuse.fsverity-fuse", "-o", "ro"])
            .arg(s.backing())
            .arg(s.mnt()),
    );
    assert!(
        is_mounted(&s.mnt()),
        "mount returned before the mount was live"
    );
    let (source, fstype, options) = proc_mounts_entry(&s.mnt()).expect("in /proc/mounts");
    assert_eq!(
        (fstype.as_str(), Path::new(&source)),
        ("fuse.fsverity-fuse", s.backing().as_path())
    );
    assert!(options.split(',').any(|o| o == "ro"), "options: {options}");
    let daemons = processes_mentioning(&s.backing());
    assert_eq!(daemons.len(), 1, "one daemon expected: {daemons:?}");
    assert_eq!(daemons[0].1[0], "/sbin/mount.fuse.fsverity-fuse");
    assert_eq!(
        fs::read_link(format!("/proc/{}/exe", daemons[0].0)).expect("daemon's exe"),
        Path::new("/usr/bin/fsverity-fuse"),
        "the daemon is the installed binary"
    );
    assert_eq!(
        fs::read(s.mnt().join("good")).expect("read the verity file"),
        f.good
    );
    let err = fs::read(s.mnt().join("bad")).expect_err("a tampered file reads");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");

    check(Command::new("umount").arg(s.mnt()));
    let left = wait_for_no_process(s.dir.path(), PATIENCE);
    assert!(left.is_empty(), "daemon left after umount: {left:?}");
    assert_eq!(mounts_at(&s.mnt()), 0);
}

/// man(1) finds every page by name and renders it without a warning.
fn check_man_pages() {
    for name in page_names() {
        let topic = name.trim_end_matches(".8");
        let found = text(&check(Command::new("man").args(["-w", "8", topic])).stdout);
        let page = format!("/usr/share/man/man8/{name}.gz");
        assert_eq!(found.trim(), page, "man -w {topic}");
        let out = check(
            Command::new("man")
                .args(["--warnings=all", "-l", &page])
                .env("MANWIDTH", "100")
                .env("MANPAGER", "cat")
                .env("PAGER", "cat"),
        );
        let rendered = text(&out.stdout);
        assert!(
            out.stderr.is_empty(),
            "{page}: man warned:\n{}",
            text(&out.stderr)
        );
        for section in ["NAME", "SYNOPSIS", "EXIT STATUS", "SEE ALSO"] {
            assert!(
                rendered.contains(section),
                "{page} lacks {section}:\n{rendered}"
            );
        }
        if topic == "fsverity-fuse-mount" {
            for want in [
                "MOUNT OPTIONS",
                "cache_size=SIZE",
                "trusted_key=KEY",
                "ERRORS",
                "EKEYREJECTED",
            ] {
                assert!(rendered.contains(want), "{page} lacks {want}");
            }
        }
    }
}

/// bash (through bash-completion's loader), zsh (compinit over its fpath) and
/// fish (its vendor directory) find the installed completions and complete a
/// subcommand's options.
fn check_completions() {
    let home = temp_dir("completions-home");
    let shell = |program: &str, script: &str| -> String {
        let out = check(
            Command::new(program)
                .args(["-c", script])
                .env("HOME", home.path())
                .env("XDG_CONFIG_HOME", home.path().join("config"))
                .env("XDG_DATA_HOME", home.path().join("data"))
                .env("XDG_CACHE_HOME", home.path().join("cache")),
        );
        text(&out.stdout)
    };

    let bash = "/usr/share/bash-completion/completions/fsverity-fuse";
    let spec = shell("bash", &format!("source {bash}; complete -p fsverity-fuse"));
    assert!(spec.contains("fsverity-fuse"), "complete -p: {spec}");
    // bash-completion loads it on demand from its standard directory, and a
    // subcommand's options complete.
    let got = shell(
        "bash",
        r#"source /usr/share/bash-completion/bash_completion
           __load_completion fsverity-fuse || exit 1
           COMP_WORDS=(fsverity-fuse mount --cache); COMP_CWORD=2
           COMP_LINE="fsverity-fuse mount --cache"; COMP_POINT=${#COMP_LINE}
           func=$(complete -p fsverity-fuse | sed -E 's/.* -F ([^ ]+) .*/\1/')
           "$func" fsverity-fuse --cache mount
           echo "${COMPREPLY[*]}""#,
    );
    assert_eq!(
        got.trim(),
        "--cache-size",
        "bash completion of 'mount --cache'"
    );

    let zsh = "/usr/share/zsh/vendor-completions/_fsverity-fuse";
    check(Command::new("zsh").args(["-n", zsh]));
    let got = shell(
        "zsh",
        "autoload -Uz compinit && compinit -u -d \"$HOME/zcompdump\" && print -r -- ${_comps[fsverity-fuse]}",
    );
    assert_eq!(
        got.trim(),
        "_fsverity-fuse",
        "zsh: compinit did not find it"
    );

    let fish = "/usr/share/fish/vendor_completions.d/fsverity-fuse.fish";
    check(Command::new("fish").args(["-n", fish]));
    let got = shell("fish", "complete -C 'fsverity-fuse mount --cache'");
    assert!(
        got.lines().any(|l| l.starts_with("--cache-size")),
        "fish completion of 'mount --cache': {got}"
    );
}

/// Every errno the man pages list is one docs/SEMANTICS.md documents.
#[test]
fn man_page_errnos_are_documented_in_semantics() {
    let semantics =
        fs::read_to_string(repo().join("docs/SEMANTICS.md")).expect("read docs/SEMANTICS.md");
    let page = text(&check(Command::new(bin()).args(["man", "mount"])).stdout);
    let errors = page
        .split(".SH ERRORS")
        .nth(1)
        .and_then(|rest| rest.split(".SH ").next())
        .expect("an ERRORS section");
    // Words of capitals starting with E, font escapes (\fB...\fR) removed:
    // EIO, EKEYREJECTED (not FS_IOC_ENABLE_VERITY, kept whole by its '_').
    let errors = errors.replace("\\fB", " ").replace("\\fR", " ");
    let errnos: BTreeSet<&str> = errors
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.len() >= 3 && w.starts_with('E') && w.chars().all(|c| c.is_ascii_uppercase()))
        .collect();
    assert!(errnos.len() > 10, "few errnos found: {errnos:?}");
    for errno in errnos {
        assert!(
            semantics.contains(errno),
            "{errno} is not in docs/SEMANTICS.md"
        );
    }
}

/// The published crate: sources, build script, licences and docs; no
/// integration tests and no test vectors.
#[test]
fn cargo_package_lists_no_test_data() {
    if tool("cargo", "rustup").is_none() {
        return;
    }
    let out = check(
        Command::new("cargo")
            .args(["package", "--list", "--allow-dirty", "--offline"])
            .current_dir(repo()),
    );
    let list = text(&out.stdout);
    let files: Vec<&str> = list.lines().collect();
    for want in [
        "build.rs",
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "README.md",
        "LICENSE-MIT",
    ] {
        assert!(files.contains(&want), "{want} missing from:\n{list}");
    }
    for f in &files {
        assert!(
            !f.starts_with("tests/") && !f.contains("testdata") && !f.starts_with("scripts/"),
            "{f} would be published"
        );
    }
}
