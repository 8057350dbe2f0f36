//! `fsverity-fuse status MOUNTPOINT`: a live mount's counters, for humans,
//! as JSON, or in the Prometheus text format (node_exporter textfile collector).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::fs::{MountStatus, STATUS_XATTR};

/// Show a mount's status and counters.
#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    /// Mount points.
    #[arg(required = true, value_name = "MOUNTPOINT")]
    pub(crate) mountpoints: Vec<PathBuf>,
    /// JSON output.
    #[arg(long, conflicts_with = "prometheus")]
    pub(crate) json: bool,
    /// Prometheus text exposition format.
    #[arg(long)]
    pub(crate) prometheus: bool,
}

/// Reads the status of the mount at `mnt`.
pub(crate) fn read_status(mnt: &Path) -> Result<MountStatus> {
    let mut buf = vec![0u8; 1 << 16];
    let n = match rustix::fs::getxattr(mnt, STATUS_XATTR, &mut buf[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => {
            bail!(
                "'{}' is not the root of an fsverity-fuse mount",
                mnt.display()
            )
        }
        Err(e) => {
            return Err(e).with_context(|| format!("reading the status of '{}'", mnt.display()));
        }
    };
    serde_json::from_slice(&buf[..n])
        .with_context(|| format!("decoding the status of '{}'", mnt.display()))
}

fn human(mnt: &Path, s: &MountStatus) -> String {
    let c = |k: &str| s.counters.get(k).copied().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: fsverity-fuse {}, backing {}, up {} s",
        mnt.display(),
        s.version,
        s.backing,
        s.uptime_seconds
    );
    let mut policy = vec![
        if s.read_only {
            "read-only"
        } else {
            "read-write"
        }
        .to_owned(),
    ];
    if s.require_verity {
        policy.push("require-verity".into());
    }
    if s.require_signatures {
        policy.push("require-signatures".into());
    }
    policy.push(format!("{} trusted key(s)", s.trusted_keys));
    policy.push(format!("on-corruption={}", s.on_corruption));
    if s.aborted {
        policy.push("ABORTED (no longer serving)".into());
    }
    let _ = writeln!(out, "  policy:     {}", policy.join(", "));
    let _ = writeln!(
        out,
        "  verified:   {} blocks, {} bytes; {} verification failures",
        c("blocks_verified"),
        c("bytes_verified"),
        c("verification_failures")
    );
    let _ = writeln!(
        out,
        "  opened:     {} verity, {} other files; {} policy denials ({} signature rejections)",
        c("files_opened_verity"),
        c("files_opened_plain"),
        c("policy_denials"),
        c("signature_rejections")
    );
    let (h, m) = (c("tree_cache_hits"), c("tree_cache_misses"));
    let rate = if h + m == 0 {
        0.0
    } else {
        100.0 * h as f64 / (h + m) as f64
    };
    let _ = writeln!(
        out,
        "  tree cache: {rate:.1}% hits ({h} hits, {m} misses, {} evictions, {} bytes); {} trees built, {} enables",
        c("tree_cache_evictions"),
        c("tree_cache_bytes"),
        c("trees_built"),
        c("verity_enabled")
    );
    let _ = write!(
        out,
        "  kernel:     {} inodes, {} open handles",
        s.inodes, s.open_handles
    );
    out
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counters that only grow are `_total` counters; the rest are gauges.
fn prometheus(mnt: &Path, s: &MountStatus, out: &mut String, header: bool) {
    let label = format!(
        "mountpoint=\"{}\"",
        escape_label(&mnt.display().to_string())
    );
    let gauges = ["tree_cache_bytes"];
    for (name, value) in &s.counters {
        let (metric, kind) = if gauges.contains(&name.as_str()) {
            (format!("fsverity_fuse_{name}"), "gauge")
        } else {
            (format!("fsverity_fuse_{name}_total"), "counter")
        };
        if header {
            let _ = writeln!(out, "# TYPE {metric} {kind}");
        }
        let _ = writeln!(out, "{metric}{{{label}}} {value}");
    }
    for (name, value) in [
        ("inodes", s.inodes),
        ("open_handles", s.open_handles),
        ("uptime_seconds", s.uptime_seconds),
        ("aborted", u64::from(s.aborted)),
    ] {
        if header {
            let _ = writeln!(out, "# TYPE fsverity_fuse_{name} gauge");
        }
        let _ = writeln!(out, "fsverity_fuse_{name}{{{label}}} {value}");
    }
}

pub(crate) fn run(args: &StatusArgs) -> Result<bool> {
    let mut all = Vec::new();
    for m in &args.mountpoints {
        all.push((m.clone(), read_status(m)?));
    }
    if args.json {
        let doc: serde_json::Map<String, serde_json::Value> = all
            .iter()
            .map(|(m, s)| Ok((m.display().to_string(), serde_json::to_value(s)?)))
            .collect::<Result<_, serde_json::Error>>()
            .context("encoding JSON")?;
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("encoding JSON")?
        );
    } else if args.prometheus {
        let mut out = String::new();
        for (i, (m, s)) in all.iter().enumerate() {
            prometheus(m, s, &mut out, i == 0);
        }
        print!("{out}");
    } else {
        for (m, s) in &all {
            println!("{}", human(m, s));
        }
    }
    Ok(true)
}
