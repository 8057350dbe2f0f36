//! The mount(8) helper form: `fsverity-fuse SOURCE MOUNTPOINT -o OPTIONS`, as
//! fuse3's mount.fuse3 runs it for `mount -t fuse.fsverity-fuse` and fstab
//! lines, and `mount.fuse.fsverity-fuse SOURCE MOUNTPOINT -o OPTIONS` (a link to
//! this binary) as mount(8) runs it directly. Every mount option has an `-o`
//! spelling; the command daemonizes unless `-f` is given.

use std::ffi::OsString;
use std::path::Path;

use anyhow::Result;

use super::UsageError;
use clap::{Args, FromArgMatches};

use super::mount::MountArgs;

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

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// Options mount(8) and fstab pass that mean nothing more here: always on
/// (`nosuid`, `nodev`, `default_permissions`), or mount(8)'s own.
const IGNORED: &[&str] = &[
    "default_permissions",
    "nosuid",
    "nodev",
    "suid",
    "dev",
    "atime",
    "noatime",
    "relatime",
    "strictatime",
    "nodiratime",
    "diratime",
    "sync",
    "async",
    "dirsync",
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "group",
    "owner",
    "nofail",
    "_netdev",
    "fsname",
    "subtype",
    "comment",
];

/// The mount command's definition: the one source of the `-o` spellings.
fn mount_command() -> clap::Command {
    MountArgs::augment_args(clap::Command::new("fsverity-fuse"))
}

/// `-o` spelling of a flag: `--allow-other` is `allow_other`.
fn o_name(long: &str) -> String {
    long.replace('-', "_")
}

/// The `-o` options, derived from the mount command's flags, with their help.
pub(crate) fn options_help() -> String {
    let mut out = String::new();
    for arg in mount_command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let value = match arg.get_action().takes_values() {
            true => format!(
                "={}",
                arg.get_value_names()
                    .and_then(|v| v.first())
                    .map_or("VALUE".to_owned(), |v| v.to_string())
            ),
            false => String::new(),
        };
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        out.push_str(&format!(
            "  {:<28} {help}\n",
            format!("{}{value}", o_name(long))
        ));
    }
    out.push_str(&format!("  {:<28} {}\n", "rw, exec", "undo ro, noexec"));
    out.push_str(&format!(
        "  {:<28} {}\n",
        "remount", "change ro/rw and exec/noexec of the live mount"
    ));
    out
}

/// Parses `SOURCE MOUNTPOINT [-o OPTS]... [-f] [-n] [-s] [-v]`: every `-o`
/// option is the mount command's flag of the same name (`cache_size=1G` is
/// `--cache-size=1G`), parsed by the same definition.
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
                return Err(usage(format!(
                    "usage: fsverity-fuse BACKING MOUNTPOINT [-o OPTION[,OPTION...]] [-f]\noptions:\n{}",
                    options_help()
                )));
            }
            o if o.starts_with("-o") => options.push(o[2..].to_owned()),
            o if o.starts_with('-') => return Err(usage(format!("unknown flag '{o}'"))),
            _ => positional.push(a.clone()),
        }
    }
    let [backing, mountpoint] = <[OsString; 2]>::try_from(positional)
        .map_err(|_| usage("expected exactly two arguments: BACKING MOUNTPOINT"))?;
    let command = mount_command();
    let mut remount = false;
    let mut changes = Remount::default();
    // Flags by name: the last value wins, repeatable ones collect.
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    for opt in options
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
    {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        let long = key.replace('_', "-");
        match key {
            "remount" => remount = true,
            "rw" | "exec" => {
                let undone = if key == "rw" { "ro" } else { "noexec" };
                flags.retain(|(f, _)| f != undone);
                match key {
                    "rw" => changes.read_only = Some(false),
                    _ => changes.noexec = Some(false),
                }
            }
            k if IGNORED.contains(&k) || k.starts_with("x-") => {}
            _ => {
                let Some(arg) = command
                    .get_arguments()
                    .find(|a| a.get_long() == Some(&long))
                else {
                    if sloppy {
                        tracing::debug!(option = key, "ignoring unknown option (-s)");
                        continue;
                    }
                    return Err(usage(format!("unknown mount option '{key}'")));
                };
                let takes = arg.get_action().takes_values();
                match (takes, value) {
                    (true, None) => return Err(usage(format!("-o {key} needs a value"))),
                    (false, Some(_)) => return Err(usage(format!("-o {key} takes no value"))),
                    _ => {}
                }
                if !matches!(arg.get_action(), clap::ArgAction::Append) {
                    flags.retain(|(f, _)| *f != long);
                }
                match long.as_str() {
                    "ro" => changes.read_only = Some(true),
                    "noexec" => changes.noexec = Some(true),
                    _ => {}
                }
                flags.push((long, value.map(str::to_owned)));
            }
        }
    }
    let mut argv: Vec<OsString> = vec!["fsverity-fuse".into(), backing, mountpoint];
    for (long, value) in flags {
        argv.push(match value {
            Some(v) => format!("--{long}={v}").into(),
            None => format!("--{long}").into(),
        });
    }
    let matches = command.clone().try_get_matches_from(argv).map_err(|e| {
        // clap's message, with the flags in their -o spelling.
        let text = e.to_string();
        let mut text = text
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned();
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long() {
                for value in arg.get_value_names().into_iter().flatten() {
                    text = text.replace(
                        &format!("'--{long} <{value}>'"),
                        &format!("'-o {}'", o_name(long)),
                    );
                }
                text = text.replace(&format!("'--{long}'"), &format!("'-o {}'", o_name(long)));
            }
        }
        usage(text)
    })?;
    let mount = MountArgs::from_arg_matches(&matches).map_err(|e| usage(e.to_string()))?;
    Ok(HelperArgs {
        mount,
        remount: remount.then_some(changes),
        foreground,
        fake,
        verbose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verity::OnCorruption;
    use std::path::PathBuf;

    #[test]
    fn every_mount_flag_has_an_o_spelling_in_the_help() {
        let help = options_help();
        for arg in mount_command().get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(help.contains(&o_name(long)), "{long} missing from:\n{help}");
                // And it parses.
                let value = arg.get_action().takes_values().then_some("=1");
                let opt = format!("{}{}", o_name(long), value.unwrap_or_default());
                let opt = match long {
                    "on-corruption" => "on_corruption=log".to_owned(),
                    "digest" => format!("digest={}", "ab".repeat(32)),
                    _ => opt,
                };
                parse(&os(&["/b", "/m", "-o", &opt]), Style::Fuse)
                    .unwrap_or_else(|e| panic!("-o {opt}: {e}"));
            }
        }
        assert!(help.contains("readahead=KIB"), "{help}");
    }

    #[test]
    fn later_options_win_and_rw_undoes_ro() {
        let h = parse(
            &os(&["/b", "/m", "-o", "ro,threads=2", "-o", "rw,threads=8"]),
            Style::Fuse,
        )
        .expect("parses");
        assert!(!h.mount.ro);
        assert_eq!(h.mount.threads, 8);
    }

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
