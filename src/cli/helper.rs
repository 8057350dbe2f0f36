//! The mount(8) helper form: `fsverity-fuse SOURCE MOUNTPOINT -o OPTIONS`, as
//! fuse3's mount.fuse3 runs it for `mount -t fuse.fsverity-fuse` and fstab
//! lines, and `mount.fuse.fsverity-fuse SOURCE MOUNTPOINT -o OPTIONS` (a link to
//! this binary) as mount(8) runs it directly. Every mount option has an `-o`
//! spelling; the command daemonizes unless `-f` is given.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::UsageError;
use super::mount::{MountArgs, parse_size};
use crate::verity::OnCorruption;

/// The flag changes a `mount -o remount,...` asks for (`None`: unchanged).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Remount {
    pub(crate) read_only: Option<bool>,
    pub(crate) noexec: Option<bool>,
}

/// A parsed helper invocation.
#[derive(Debug)]
pub(crate) struct HelperArgs {
    pub(crate) mount: MountArgs,
    /// `-o remount,...`: change the live mount's flags instead of mounting.
    pub(crate) remount: Option<Remount>,
    pub(crate) foreground: bool,
    /// `mount -f`: check everything, mount nothing.
    pub(crate) fake: bool,
    pub(crate) verbose: u8,
}

/// How the helper was invoked: its flags differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// As `mount.fuse.fsverity-fuse` by mount(8): `-f` means fake.
    MountHelper,
    /// As `fsverity-fuse SOURCE MNT` (by mount.fuse3 or by hand): `-f` means foreground.
    Fuse,
}

/// The helper arguments, if this process was invoked as a mount helper.
pub(crate) fn detect(argv: &[OsString], subcommands: &[String]) -> Option<(Vec<OsString>, Style)> {
    let arg0 = argv.first().map(|a| {
        Path::new(a)
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    })?;
    if arg0.starts_with("mount.fuse.fsverity-fuse") || arg0.starts_with("mount.fsverity-fuse") {
        return Some((argv[1..].to_vec(), Style::MountHelper));
    }
    let first = argv.get(1)?.to_string_lossy().into_owned();
    // mount.fuse3 passes the source as written in fstab: a path. A mistyped
    // subcommand is not one, and stays a usage error.
    let is_path = first.contains('/') || Path::new(&first).is_dir();
    let looks_like_helper = argv.len() >= 3 && is_path && !subcommands.contains(&first);
    looks_like_helper.then(|| (argv[1..].to_vec(), Style::Fuse))
}

fn base_args(backing: PathBuf, mountpoint: PathBuf) -> MountArgs {
    MountArgs {
        backing,
        mountpoint,
        ro: false,
        allow_other: false,
        cache_size: 64 << 20,
        threads: 4,
        tree_dir: None,
        require_verity: false,
        require_signatures: false,
        trusted_keys: Vec::new(),
        on_corruption: OnCorruption::Eio,
        noexec: false,
        attr_timeout: 1.0,
        readahead: 1024,
    }
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// Parses `SOURCE MOUNTPOINT [-o OPTS]... [-f] [-n] [-s] [-v]`.
pub(crate) fn parse(args: &[OsString], style: Style) -> Result<HelperArgs> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let (mut foreground, mut fake, mut sloppy, mut verbose) = (false, false, false, 0u8);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        match s.as_ref() {
            "-o" => options.push(
                it.next()
                    .ok_or_else(|| usage("-o needs a value"))?
                    .to_string_lossy()
                    .into_owned(),
            ),
            "-f" if style == Style::MountHelper => fake = true,
            "-f" => foreground = true,
            "-s" => sloppy = true,
            "-v" => verbose = verbose.saturating_add(1),
            "-n" | "--" => {}
            "-h" | "--help" => {
                return Err(usage(
                    "usage: fsverity-fuse BACKING MOUNTPOINT [-o OPTION[,OPTION...]] [-f]\n\
                     options: ro, rw, allow_other, noexec, trusted_key=PATH, require_signatures, require_verity,\n\
                     tree_dir=DIR, cache_size=SIZE, threads=N, on_corruption=eio|log|abort, attr_timeout=SECONDS,\n\
                     readahead=KIB; remount (with ro, rw, exec, noexec) changes a live mount",
                ));
            }
            o if o.starts_with("-o") => options.push(o[2..].to_owned()),
            o if o.starts_with('-') => return Err(usage(format!("unknown flag '{o}'"))),
            _ => positional.push(PathBuf::from(a)),
        }
    }
    let [backing, mountpoint] = <[PathBuf; 2]>::try_from(positional)
        .map_err(|_| usage("expected exactly two arguments: BACKING MOUNTPOINT"))?;
    let mut m = base_args(backing, mountpoint);
    let mut remount = false;
    let mut changes = Remount::default();
    for opt in options
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
    {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        let need = |what: &str| value.ok_or_else(|| usage(format!("-o {key} needs ={what}")));
        match key {
            "remount" => remount = true,
            "ro" | "rw" => {
                m.ro = key == "ro";
                changes.read_only = Some(m.ro);
            }
            "allow_other" => m.allow_other = true,
            "noexec" | "exec" => {
                m.noexec = key == "noexec";
                changes.noexec = Some(m.noexec);
            }
            "require_signatures" => m.require_signatures = true,
            "require_verity" => m.require_verity = true,
            "trusted_key" => m.trusted_keys.push(PathBuf::from(need("PATH")?)),
            "tree_dir" => m.tree_dir = Some(PathBuf::from(need("DIR")?)),
            "cache_size" => m.cache_size = parse_size(need("SIZE")?).map_err(usage)?,
            "threads" => {
                m.threads = need("N")?
                    .parse()
                    .ok()
                    .filter(|n| (1..=256).contains(n))
                    .ok_or_else(|| usage("-o threads=N takes 1 to 256"))?
            }
            "on_corruption" => m.on_corruption = need("MODE")?.parse().map_err(usage)?,
            "readahead" => {
                m.readahead = need("KIB")?
                    .parse()
                    .ok()
                    .filter(|n| *n <= 65536)
                    .ok_or_else(|| usage("-o readahead=KIB takes 0 to 65536"))?
            }
            "attr_timeout" => {
                m.attr_timeout = need("SECONDS")?
                    .parse()
                    .map_err(|_| usage("-o attr_timeout takes seconds"))?
            }
            // Always on, or meaningless for this filesystem: accepted, ignored.
            "default_permissions"
            | "nosuid"
            | "nodev"
            | "suid"
            | "dev"
            | "atime"
            | "noatime"
            | "relatime"
            | "strictatime"
            | "nodiratime"
            | "diratime"
            | "sync"
            | "async"
            | "dirsync"
            | "defaults"
            | "auto"
            | "noauto"
            | "user"
            | "nouser"
            | "users"
            | "group"
            | "owner"
            | "nofail"
            | "_netdev"
            | "fsname"
            | "subtype"
            | "comment" => {}
            k if k.starts_with("x-") => {}
            other if sloppy => tracing::debug!(option = other, "ignoring unknown option (-s)"),
            other => return Err(usage(format!("unknown mount option '{other}'"))),
        }
    }
    Ok(HelperArgs {
        mount: m,
        remount: remount.then_some(changes),
        foreground,
        fake,
        verbose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_fuse(args: &[OsString]) -> Result<HelperArgs> {
        parse(args, Style::Fuse)
    }

    #[test]
    fn dash_f_is_fake_for_mount_8_and_foreground_for_fuse() {
        let args = os(&["/b", "/m", "-f"]);
        let fake = parse(&args, Style::MountHelper).expect("parses");
        assert!(fake.fake && !fake.foreground);
        let fg = parse(&args, Style::Fuse).expect("parses");
        assert!(fg.foreground && !fg.fake);
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn detects_helper_invocations() {
        let subs = vec!["mount".to_owned(), "digest".to_owned()];
        assert!(detect(&os(&["/sbin/mount.fuse.fsverity-fuse", "/b", "/m"]), &subs).is_some());
        assert!(detect(&os(&["fsverity-fuse", "/b", "/m", "-o", "ro"]), &subs).is_some());
        assert!(detect(&os(&["fsverity-fuse", "mount", "/b", "/m"]), &subs).is_none());
        assert!(detect(&os(&["fsverity-fuse", "--help"]), &subs).is_none());
        assert!(detect(&os(&["fsverity-fuse", "digest"]), &subs).is_none());
        assert!(detect(&os(&["fsverity-fuse", "no-such-command", "FILE"]), &subs).is_none());
    }

    #[test]
    fn parses_fstab_style_options() {
        let h = parse_fuse(&os(&[
            "/b",
            "/m",
            "-o",
            "ro,allow_other,trusted_key=/k1.pem,trusted_key=/k2.pem,require_signatures,cache_size=1G,threads=8,on_corruption=abort,nofail,x-systemd.automount",
            "-f",
        ]))
        .expect("parses");
        assert!(h.foreground);
        assert!(h.mount.ro && h.mount.allow_other && h.mount.require_signatures);
        assert_eq!(
            h.mount.trusted_keys,
            vec![PathBuf::from("/k1.pem"), PathBuf::from("/k2.pem")]
        );
        assert_eq!((h.mount.cache_size, h.mount.threads), (1 << 30, 8));
        assert_eq!(h.mount.on_corruption, OnCorruption::Abort);
    }

    #[test]
    fn remount_records_only_the_flags_given() {
        let h = parse_fuse(&os(&["/b", "/m", "-o", "remount,ro"])).expect("parses");
        assert_eq!(
            h.remount,
            Some(Remount {
                read_only: Some(true),
                noexec: None
            })
        );
        let h = parse_fuse(&os(&["/b", "/m", "-o", "rw,noexec,remount,cache_size=1G"]))
            .expect("parses");
        assert_eq!(
            h.remount,
            Some(Remount {
                read_only: Some(false),
                noexec: Some(true)
            })
        );
        assert_eq!(
            parse_fuse(&os(&["/b", "/m", "-o", "ro"]))
                .expect("parses")
                .remount,
            None
        );
    }

    #[test]
    fn rejects_bad_options() {
        for bad in [
            &["/b", "/m", "-o", "bogus"][..],
            &["/b", "/m", "-o", "threads=0"],
            &["/b", "/m", "-o", "trusted_key"],
            &["/b"],
            &["/b", "/m", "/x"],
            &["/b", "/m", "-o"],
            &["/b", "/m", "-z"],
        ] {
            let err = parse_fuse(&os(bad)).expect_err("invalid");
            assert!(err.is::<UsageError>(), "{bad:?}: {err}");
        }
        assert!(parse_fuse(&os(&["/b", "/m", "-s", "-o", "bogus"])).is_ok());
    }
}
