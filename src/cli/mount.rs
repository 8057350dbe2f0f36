//! `fsverity-fuse mount BACKING MOUNTPOINT`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result};
use clap::Args;

use crate::format::{HashAlgorithm, HashValue};
use crate::fs::{FsOptions, ImageOptions};
use crate::fuse::Ttls;
use crate::mount::notify::notify;
use crate::mount::{MountConfig, mount};
use crate::signature::TrustedKeys;
use crate::verity::{OnCorruption, Policy};

/// Present BACKING (a directory, or a composefs image) at MOUNTPOINT,
/// verifying every read of verity files.
#[derive(Args, Debug)]
pub(crate) struct MountArgs {
    /// Directory to present, or a composefs image file (with --objects).
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
    /// Trust this Ed25519 public key (SubjectPublicKeyInfo PEM) or X.509
    /// certificate (PEM or DER, for the kernel's PKCS#7 signatures), or every
    /// .pem, .crt and .der file in this directory. Repeatable.
    #[arg(long = "trusted-key", value_name = "KEY")]
    pub(crate) trusted_keys: Vec<PathBuf>,
    /// What a block that fails verification does: eio (default), log (serve it
    /// anyway, for rolling out), abort (stop serving the whole mount).
    #[arg(long = "on-corruption", default_value = "eio", value_name = "MODE")]
    pub(crate) on_corruption: OnCorruption,
    /// Forbid executing programs from the mount.
    #[arg(long)]
    pub(crate) noexec: bool,
    /// Memory for verified read-ahead: large sequential reads of verity files
    /// are verified ahead of the kernel's requests, within this budget across
    /// all open files (e.g. 16M; 0, the default, turns it off).
    #[arg(long = "verified-readahead", default_value = "0", value_parser = parse_size, value_name = "SIZE")]
    pub(crate) verified_readahead: u64,
    /// Kernel readahead for the mount, in KiB (0: the kernel's default).
    #[arg(long, default_value_t = 1024, value_name = "KIB", value_parser = clap::value_parser!(u32).range(0..=65536))]
    pub(crate) readahead: u32,
    /// Seconds the kernel may cache attributes and directory entries
    /// (default: 1 for a directory, 3600 for an image, which cannot change).
    #[arg(long = "attr-timeout", value_name = "SECONDS")]
    pub(crate) attr_timeout: Option<f64>,
    /// Seconds the kernel may cache the attributes of verity files
    /// (immutable through the mount; changes made to them in the backing
    /// directory show after this).
    #[arg(
        long = "verity-attr-timeout",
        default_value_t = 30.0,
        value_name = "SECONDS"
    )]
    pub(crate) verity_attr_timeout: f64,
    /// Image mounts: a directory of the objects the image names (its files'
    /// contents, under their fs-verity digests). Repeatable: searched in order.
    #[arg(long = "objects", value_name = "DIR")]
    pub(crate) objects: Vec<PathBuf>,
    /// Image mounts: the image's expected fs-verity digest (ALG:HEX, or bare
    /// hex for SHA-256), as `mount.composefs -o digest=`.
    #[arg(long, value_name = "DIGEST", value_parser = parse_digest)]
    pub(crate) digest: Option<(HashAlgorithm, HashValue)>,
    /// Image mounts: a signature over the image's digest (Ed25519 or PKCS#7),
    /// checked against --trusted-key.
    #[arg(long, value_name = "FILE")]
    pub(crate) signature: Option<PathBuf>,
    /// Image mounts: mount an image without verifying it (names and contents
    /// are then whatever the file holds; file contents are still verified
    /// against the digests it records).
    #[arg(long)]
    pub(crate) insecure: bool,
}

/// Parses `sha256:HEX`, `sha512:HEX` or bare hex (its length tells the algorithm).
pub(crate) fn parse_digest(s: &str) -> Result<(HashAlgorithm, HashValue), String> {
    let (alg, hex) = match s.split_once(':') {
        Some((alg, hex)) => (
            Some(alg.parse::<HashAlgorithm>().map_err(|e| e.to_string())?),
            hex,
        ),
        None => (None, s),
    };
    let bytes = hex::decode(hex).map_err(|e| format!("'{hex}' is not hex: {e}"))?;
    let alg = match alg {
        Some(a) => a,
        None => HashAlgorithm::ALL
            .into_iter()
            .find(|a| a.is_kernel_algorithm() && a.digest_size() == bytes.len())
            .ok_or_else(|| {
                format!(
                    "a digest of {} bytes has no algorithm; write ALG:HEX",
                    bytes.len()
                )
            })?,
    };
    if bytes.len() != alg.digest_size() {
        return Err(format!(
            "a {alg} digest is {} bytes, not {}",
            alg.digest_size(),
            bytes.len()
        ));
    }
    Ok((alg, HashValue::from_slice(&bytes)))
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

/// Checks the arguments and turns them into a mount configuration.
fn config(args: &MountArgs) -> Result<MountConfig> {
    // A file is an image (which needs --objects: a usage error naming the
    // file says so when it is missing).
    let image_options = !args.objects.is_empty()
        || args.digest.is_some()
        || args.signature.is_some()
        || args.insecure;
    let is_image = args.backing.is_file();
    let attr_timeout = args
        .attr_timeout
        .unwrap_or(if is_image { 3600.0 } else { 1.0 });
    for (value, flag) in [
        (attr_timeout, "--attr-timeout"),
        (args.verity_attr_timeout, "--verity-attr-timeout"),
    ] {
        if !(0.0..=3600.0).contains(&value) {
            let msg = format!("{flag} must be between 0 and 3600 seconds");
            return Err(super::UsageError(msg).into());
        }
    }
    let trusted = TrustedKeys::load(&args.trusted_keys)?;
    if args.require_signatures && trusted.is_empty() {
        return Err(super::UsageError(
            "requiring signatures needs at least one trusted key (--trusted-key, or -o trusted_key=)".into(),
        )
        .into());
    }
    let ttl = Duration::from_secs_f64(attr_timeout);
    let image = match is_image {
        true => Some(ImageOptions {
            objects: args
                .objects
                .iter()
                .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()))
                .collect(),
            digest: args.digest,
            signature: match &args.signature {
                Some(p) => {
                    Some(std::fs::read(p).with_context(|| format!("signature {}", p.display()))?)
                }
                None => None,
            },
            insecure: args.insecure,
        }),
        false if image_options => {
            return Err(super::UsageError(
                "--objects, --digest, --signature and --insecure are for image mounts (BACKING an image file)".into(),
            )
            .into());
        }
        false => None,
    };
    if image.as_ref().is_some_and(|i| i.objects.is_empty()) {
        return Err(super::UsageError(format!(
            "'{}' is not a directory: mounting an image file needs --objects DIR",
            args.backing.display()
        ))
        .into());
    }
    Ok(MountConfig {
        image,
        backing: std::path::absolute(&args.backing).unwrap_or_else(|_| args.backing.clone()),
        mountpoint: std::path::absolute(&args.mountpoint)
            .unwrap_or_else(|_| args.mountpoint.clone()),
        fs: FsOptions {
            read_only: args.ro,
            cache_size: usize::try_from(args.cache_size).unwrap_or(usize::MAX),
            tree_dir: args
                .tree_dir
                .as_ref()
                .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone())),
            build_threads: 0,
            read_ahead: usize::try_from(args.verified_readahead).unwrap_or(usize::MAX),
            policy: Policy {
                require_verity: args.require_verity,
                require_signatures: args.require_signatures,
                trusted_keys: Arc::new(trusted),
                on_corruption: args.on_corruption,
            },
        },
        allow_other: args.allow_other,
        noexec: args.noexec,
        threads: args.threads.into(),
        ttl: Ttls {
            attr: ttl,
            entry: ttl,
            verity: Duration::from_secs_f64(args.verity_attr_timeout),
        },
        readahead_kb: args.readahead,
    })
}

fn warn_about(args: &MountArgs) {
    if args.on_corruption == OnCorruption::Log {
        tracing::warn!(
            "--on-corruption=log: blocks that fail verification are SERVED ANYWAY; use only while rolling verity out"
        );
    }
}

/// Checks the arguments (and that the paths are usable) without mounting.
pub(crate) fn check(args: &MountArgs) -> Result<bool> {
    let config = config(args)?;
    anyhow::ensure!(
        config.backing.is_dir() || config.image.is_some(),
        "backing directory {} is not a directory",
        config.backing.display()
    );
    anyhow::ensure!(
        config.mountpoint.is_dir(),
        "mount point {} is not a directory",
        config.mountpoint.display()
    );
    Ok(true)
}

/// Mounts and serves in the foreground until unmounted or signalled, telling
/// systemd (Type=notify) when the mount is live and when it stops.
pub(crate) fn run(args: &MountArgs) -> Result<bool> {
    let config = config(args)?;
    warn_about(args);
    let mounted = mount(&config)?;
    tracing::info!(backing = %config.backing.display(), mountpoint = %config.mountpoint.display(), "mounted");
    notify("READY=1");
    let result = mounted.serve();
    notify("STOPPING=1");
    result?;
    tracing::info!("unmounted");
    Ok(true)
}

/// Mounts in a daemon: returns (exit 0) once the filesystem is live, or reports
/// the failure (exit 1), like other FUSE filesystems started by mount(8).
pub(crate) fn run_daemon(args: &MountArgs, verbose: u8) -> Result<bool> {
    let config = config(args)?;
    let (mut parent_end, mut child_end) = UnixStream::pair().context("creating a socket pair")?;
    match crate::sys::fork().context("fork")? {
        Some(_child) => {
            drop(child_end);
            let mut msg = String::new();
            let _ = parent_end.read_to_string(&mut msg);
            match msg.strip_prefix("ok") {
                Some(_) => Ok(true),
                None if msg.is_empty() => {
                    anyhow::bail!("the daemon exited before the mount was live")
                }
                None => anyhow::bail!("{}", msg.trim_end()),
            }
        }
        None => {
            drop(parent_end);
            let _ = rustix::process::setsid();
            super::init_daemon_logging(verbose);
            warn_about(args);
            let mounted = match mount(&config) {
                Ok(m) => m,
                Err(e) => {
                    let _ = write!(child_end, "{:#}", anyhow::Error::from(e));
                    std::process::exit(1);
                }
            };
            tracing::info!(backing = %config.backing.display(), mountpoint = %config.mountpoint.display(), "mounted");
            detach_stdio();
            let _ = child_end.write_all(b"ok");
            drop(child_end);
            let result = mounted.serve();
            if let Err(e) = &result {
                tracing::error!(error = %e, "session ended with an error");
            }
            std::process::exit(i32::from(result.is_err()));
        }
    }
}

/// `mount -o remount,...`: changes the flags of the live mount at
/// `mountpoint` (read-only, exec); the daemon's other options keep the values
/// it started with. Flags not named keep their current value.
pub(crate) fn remount(
    mountpoint: &std::path::Path, changes: super::helper::Remount,
) -> Result<bool> {
    use rustix::mount::MountFlags;
    let canonical = mountpoint
        .canonicalize()
        .with_context(|| format!("mount point {}", mountpoint.display()))?;
    let current = crate::mount::mountinfo::entries()
        .into_iter()
        .rfind(|e| e.mountpoint == canonical)
        .filter(|e| e.fstype == crate::mount::mountinfo::FSTYPE)
        .with_context(|| format!("{} is not an fsverity-fuse mount", canonical.display()))?;
    let has = |o: &str| current.mount_options.split(',').any(|x| x == o);
    // Always nosuid and nodev, as at mount time.
    let mut flags = MountFlags::NOSUID | MountFlags::NODEV;
    if changes.read_only.unwrap_or_else(|| has("ro")) {
        flags |= MountFlags::RDONLY;
    }
    if changes.noexec.unwrap_or_else(|| has("noexec")) {
        flags |= MountFlags::NOEXEC;
    }
    for (name, flag) in [
        ("noatime", MountFlags::NOATIME),
        ("nodiratime", MountFlags::NODIRATIME),
        ("strictatime", MountFlags::STRICTATIME),
    ] {
        if has(name) {
            flags |= flag;
        }
    }
    crate::mount::kernel::remount(&canonical, flags)
        .with_context(|| format!("remounting {}", canonical.display()))?;
    tracing::info!(mountpoint = %canonical.display(), ?flags, "remounted");
    Ok(true)
}

/// Points standard input, output and error at /dev/null and leaves the
/// working directory (a daemon must not keep either busy).
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
    let _ = std::env::set_current_dir("/");
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
