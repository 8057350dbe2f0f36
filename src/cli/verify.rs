//! `fsverity-fuse verify PATH...`: offline check of backing files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::locate::{Located, store_dir};
use crate::signature::TrustedKeys;
use crate::store::{STORE_DIR_NAME, TreeStore};
use crate::verity::audit::{AuditOptions, FileReport, audit_file};

/// Check verity files offline: data against tree, tree against descriptor,
/// signature against trusted keys.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// Files, or directories with --recursive.
    #[arg(required = true, value_name = "PATH")]
    pub(crate) paths: Vec<PathBuf>,
    /// Descend into directories.
    #[arg(short, long)]
    pub(crate) recursive: bool,
    /// Check signatures against these Ed25519 public keys and X.509 certificates
    /// (files, or directories of .pem, .crt and .der files).
    #[arg(long = "trusted-key", value_name = "KEY")]
    pub(crate) trusted_keys: Vec<PathBuf>,
    /// A verity file without a signature is a problem.
    #[arg(long = "require-signatures")]
    pub(crate) require_signatures: bool,
    /// A regular file without verity is a problem.
    #[arg(long = "require-verity")]
    pub(crate) require_verity: bool,
    /// Tree store (default: the nearest .fsverity-fuse directory above each file).
    #[arg(long = "tree-dir", value_name = "DIR")]
    pub(crate) tree_dir: Option<PathBuf>,
    /// Print a JSON report instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

fn collect(path: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("can't stat '{}'", path.display()))?;
    if meta.is_dir() {
        if !recursive {
            anyhow::bail!("'{}' is a directory (use --recursive)", path.display());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("can't list '{}'", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().is_none_or(|n| n != STORE_DIR_NAME))
            .collect();
        entries.sort();
        for e in entries {
            collect(&e, recursive, out)?;
        }
    } else if meta.is_file() {
        out.push(path.to_path_buf());
    }
    Ok(())
}

pub(crate) fn run(args: &VerifyArgs) -> Result<bool> {
    if args.require_signatures && args.trusted_keys.is_empty() {
        return Err(super::UsageError(
            "--require-signatures needs at least one --trusted-key".into(),
        )
        .into());
    }
    let options = AuditOptions {
        trusted_keys: TrustedKeys::load(&args.trusted_keys)?,
        require_signatures: args.require_signatures,
        require_verity: args.require_verity,
    };
    let mut files = Vec::new();
    for p in &args.paths {
        collect(p, args.recursive, &mut files)?;
    }
    let total: u64 = files
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum();
    let bar = super::progress::stderr_bar(total, super::progress::Unit::Bytes, args.json);
    let mut reports: Vec<FileReport> = Vec::new();
    for f in &files {
        bar.set_message(f.display().to_string());
        let located = Located {
            file: f.clone(),
            backing_root: None,
        };
        let store = store_dir(&located, args.tree_dir.as_deref())
            .and_then(|d| TreeStore::existing(&d).ok());
        let report = audit_file(f, store.as_ref(), &options, &|n| bar.inc(n));
        if !args.json {
            for p in &report.problems {
                let line = match (p.block, p.offset) {
                    (Some(b), Some(o)) => {
                        format!("{}: block {b} (offset {o}): {}", f.display(), p.reason)
                    }
                    _ => format!("{}: {}", f.display(), p.reason),
                };
                bar.suspend(|| println!("{line}"));
            }
        }
        reports.push(report);
    }
    bar.finish_and_clear();
    let verity = reports.iter().filter(|r| r.verity).count();
    let bad_files = reports.iter().filter(|r| !r.problems.is_empty()).count();
    let problems: usize = reports.iter().map(|r| r.problems.len()).sum();
    if args.json {
        let doc = serde_json::json!({
            "files": reports,
            "summary": {
                "files": reports.len(),
                "verity_files": verity,
                "files_with_problems": bad_files,
                "problems": problems,
            }
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("encoding JSON")?
        );
    } else {
        println!(
            "checked {} files ({} verity, {} other): {} with problems, {} problems",
            reports.len(),
            verity,
            reports.len() - verity,
            bad_files,
            problems
        );
    }
    Ok(problems == 0)
}
