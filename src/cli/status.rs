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
    if let Some(image) = &s.image {
        let _ = writeln!(
            out,
            "  image:      {} verified by {}; objects in {}",
            image.digest,
            image.verified,
            image.objects.join(":")
        );
    }
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

/// The Prometheus text exposition of several mounts: counters that only grow
/// are `_total` counters, the rest gauges; one `# TYPE` line and one group per
/// metric, a `mountpoint` label (canonical path) per mount.
fn prometheus(all: &[(PathBuf, MountStatus)]) -> String {
    let label = |mnt: &Path| {
        let path = mnt.canonicalize().unwrap_or_else(|_| mnt.to_path_buf());
        format!(
            "mountpoint=\"{}\"",
            escape_label(&path.display().to_string())
        )
    };
    let gauges = crate::fs::GAUGES;
    // (metric, kind, value of each mount)
    let mut metrics: Vec<(String, &str, Vec<u64>)> = Vec::new();
    if let Some((_, first)) = all.first() {
        for name in first.counters.keys() {
            let (metric, kind) = if gauges.contains(&name.as_str()) {
                (format!("fsverity_fuse_{name}"), "gauge")
            } else {
                (format!("fsverity_fuse_{name}_total"), "counter")
            };
            let values = all
                .iter()
                .map(|(_, s)| s.counters.get(name).copied().unwrap_or(0))
                .collect();
            metrics.push((metric, kind, values));
        }
        let gauge = |name: &str, f: fn(&MountStatus) -> u64| {
            (
                format!("fsverity_fuse_{name}"),
                "gauge",
                all.iter().map(|(_, s)| f(s)).collect::<Vec<_>>(),
            )
        };
        metrics.push(gauge("inodes", |s| s.inodes));
        metrics.push(gauge("open_handles", |s| s.open_handles));
        metrics.push(gauge("uptime_seconds", |s| s.uptime_seconds));
        metrics.push(gauge("aborted", |s| u64::from(s.aborted)));
    }
    let labels: Vec<String> = all.iter().map(|(m, _)| label(m)).collect();
    let mut out = String::new();
    for (metric, kind, values) in metrics {
        let _ = writeln!(out, "# TYPE {metric} {kind}");
        for (l, v) in labels.iter().zip(values) {
            let _ = writeln!(out, "{metric}{{{l}}} {v}");
        }
    }
    out
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
        print!("{}", prometheus(&all));
    } else {
        for (m, s) in &all {
            println!("{}", human(m, s));
        }
    }
    Ok(true)
}
