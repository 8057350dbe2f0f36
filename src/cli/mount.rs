//! `fsverity-fuse mount BACKING MOUNTPOINT`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::fs::{FsOptions, OnCorruption, Policy};
use crate::fuse::Ttls;
use crate::mount::{MountConfig, mount};
use crate::signature::TrustedKeys;

/// Present BACKING at MOUNTPOINT, verifying every read of verity files.
#[derive(Args, Debug)]
pub(crate) struct MountArgs {
    /// Directory to present.
    pub(crate) backing: PathBuf,
    /// Where to present it.
    pub(crate) mountpoint: PathBuf,
    /// Read-only mount: every modification fails with EROFS.
    #[arg(long)]
    pub(crate) ro: bool,
    /// Allow other users (the kernel checks permissions against file modes).
    #[arg(long = "allow-other")]
    pub(crate) allow_other: bool,
    /// Memory for verified Merkle tree blocks (e.g. 64M, 1G).
    #[arg(long = "cache-size", default_value = "64M", value_parser = parse_size, value_name = "SIZE")]
    pub(crate) cache_size: u64,
    /// Request-handling threads.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256), value_name = "N")]
    pub(crate) threads: u16,
    /// Keep Merkle trees here instead of BACKING/.fsverity-fuse (for read-only backing directories).
    #[arg(long = "tree-dir", value_name = "DIR")]
    pub(crate) tree_dir: Option<PathBuf>,
    /// Refuse to open regular files that are not verity files (EACCES).
    #[arg(long = "require-verity")]
    pub(crate) require_verity: bool,
    /// Refuse to open verity files without a signature valid under a trusted
    /// key (EACCES), and to enable verity without a signature (EPERM).
    #[arg(long = "require-signatures")]
    pub(crate) require_signatures: bool,
    /// Trust this Ed25519 public key (SubjectPublicKeyInfo PEM), or every .pem
    /// file in this directory. Repeatable.
    #[arg(long = "trusted-key", value_name = "KEY")]
    pub(crate) trusted_keys: Vec<PathBuf>,
    /// What a block that fails verification does: eio (default), log (serve it
    /// anyway, for rolling out), abort (stop serving the whole mount).
    #[arg(long = "on-corruption", default_value = "eio", value_name = "MODE")]
    pub(crate) on_corruption: OnCorruption,
    /// Seconds the kernel may cache attributes and directory entries.
    #[arg(long = "attr-timeout", default_value_t = 1.0, value_name = "SECONDS")]
    pub(crate) attr_timeout: f64,
}

/// Parses sizes like 4096, 512K, 64M, 2G.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("unknown size suffix in '{s}' (use K, M or G)")),
            };
            (&s[..i], mult)
        }
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a size"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

pub(crate) fn run(args: &MountArgs) -> Result<bool> {
    if !(0.0..=3600.0).contains(&args.attr_timeout) {
        return Err(
            super::UsageError("--attr-timeout must be between 0 and 3600 seconds".into()).into(),
        );
    }
    if args.on_corruption == OnCorruption::Log {
        tracing::warn!(
            "--on-corruption=log: blocks that fail verification are SERVED ANYWAY; use only while rolling verity out"
        );
    }
    let ttl = Duration::from_secs_f64(args.attr_timeout);
    let trusted = TrustedKeys::load(&args.trusted_keys)?;
    if args.require_signatures && trusted.is_empty() {
        return Err(super::UsageError(
            "--require-signatures needs at least one --trusted-key".into(),
        )
        .into());
    }
    let config = MountConfig {
        backing: args.backing.clone(),
        mountpoint: args.mountpoint.clone(),
        fs: FsOptions {
            read_only: args.ro,
            cache_size: usize::try_from(args.cache_size).unwrap_or(usize::MAX),
            tree_dir: args.tree_dir.clone(),
            build_threads: 0,
            policy: Policy {
                require_verity: args.require_verity,
                require_signatures: args.require_signatures,
                trusted_keys: Arc::new(trusted),
                on_corruption: args.on_corruption,
            },
        },
        allow_other: args.allow_other,
        threads: args.threads.into(),
        ttl: Ttls {
            attr: ttl,
            entry: ttl,
        },
    };
    let mounted = mount(&config)?;
    tracing::info!(backing = %args.backing.display(), mountpoint = %args.mountpoint.display(), "mounted");
    mounted.serve()?;
    tracing::info!("unmounted");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }
}
