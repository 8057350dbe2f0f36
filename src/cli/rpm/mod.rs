//! `fsverity-fuse enable-rpm PACKAGE.rpm --root DIR`: enable fs-verity, with the
//! package's own signatures (`rpmsign --signverity`), on its files installed
//! under DIR (as `rpm2cpio PACKAGE.rpm | cpio -idm` leaves them). What rpm's
//! fsverity plugin does at install time, done offline for fsverity-fuse.
//!
//! Every signature is checked against the trusted certificates for the digest of
//! the installed file before its verity metadata is set: a file whose content
//! is not what was signed is reported and left plain; the others proceed.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use serde::Serialize;

use super::enable::find_store;
use crate::error::Error;
use crate::format::{DEFAULT_BLOCK_SIZE, Descriptor, HashAlgorithm, TreeParams};
use crate::merkle::BuildOptions;
use header::{FILE_CONFIG, FILE_GHOST, PackageFile, read_package};

mod header;
use crate::signature::TrustedKeys;
use crate::store::{EnableError, TreeStore, enable_file, read_metadata};

/// Enable fs-verity on an RPM package's installed files with its verity
/// signatures (rpmsign --signverity).
#[derive(Args, Debug)]
pub(crate) struct EnableRpmArgs {
    /// The signed package.
    #[arg(value_name = "PACKAGE.rpm")]
    pub(crate) package: PathBuf,
    /// Where the package's files are installed (`rpm2cpio PACKAGE.rpm | cpio -idm`
    /// run in DIR); the package's absolute paths are taken relative to DIR.
    #[arg(long, value_name = "DIR")]
    pub(crate) root: PathBuf,
    /// The certificates (or directories of them) the package's signatures must
    /// verify under: the certificate given to `rpmsign --certpath`.
    #[arg(long = "trusted-key", value_name = "CERT", required = true)]
    pub(crate) trusted_keys: Vec<PathBuf>,
    /// Tree store to write trees into (default: the nearest `.fsverity-fuse`
    /// directory at or above DIR).
    #[arg(long = "tree-dir", value_name = "DIR")]
    pub(crate) tree_dir: Option<PathBuf>,
    /// Hashing threads (0 = every core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) threads: usize,
    /// Print a JSON report instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// What happened to one file of the package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Enabled,
    Skipped,
    Failed,
}

/// The report line of one file.
#[derive(Debug, Serialize)]
struct FileResult {
    path: String,
    result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signer: Option<String>,
}

impl FileResult {
    fn new(path: &str, result: Outcome, reason: impl Into<Option<String>>) -> Self {
        Self {
            path: path.to_owned(),
            result,
            reason: reason.into(),
            digest: None,
            signer: None,
        }
    }
}

/// The path relative to the root, refusing anything that could leave it.
fn relative(path: &[u8]) -> Option<PathBuf> {
    let rest = path.strip_prefix(b"/")?;
    let mut out = PathBuf::new();
    for c in rest.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if c == b"." || c == b".." {
            return None;
        }
        out.push(OsStr::from_bytes(c));
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Why a file is skipped, if it is.
fn skip_reason(f: &PackageFile) -> Option<&'static str> {
    if !f.is_regular() {
        Some(match f.mode & 0o170000 {
            0o040000 => "directory",
            0o120000 => "symbolic link",
            _ => "not a regular file",
        })
    } else if f.flags & FILE_GHOST != 0 {
        Some("%ghost file (not in the payload)")
    } else if f.flags & FILE_CONFIG != 0 {
        Some("%config file (meant to be edited)")
    } else {
        None
    }
}

/// The installed tree and what enabling needs.
struct Installed<'a> {
    root: File,
    root_path: &'a Path,
    store: Option<TreeStore>,
    params: TreeParams,
    trusted: TrustedKeys,
    threads: usize,
}

impl Installed<'_> {
    /// Enables one regular file with its decoded signature.
    fn enable(&self, display: &str, rel: &Path, sig: Vec<u8>) -> FileResult {
        let opened = rustix::fs::openat2(
            &self.root,
            rel,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        );
        let file = match opened {
            Ok(fd) => File::from(fd),
            Err(e) => {
                let reason = match e {
                    rustix::io::Errno::NOENT => format!(
                        "not found under {} (extract the payload there first)",
                        self.root_path.display()
                    ),
                    e => format!("can't open under {}: {e}", self.root_path.display()),
                };
                return FileResult::new(display, Outcome::Failed, reason);
            }
        };
        let signer = RefCell::new(None);
        let sign = |d: &Descriptor| -> Result<Option<Vec<u8>>, Error> {
            let name = self
                .trusted
                .verify(d.algorithm(), &d.digest(), &sig)
                .map_err(Error::from)?;
            *signer.borrow_mut() = Some(name.to_string());
            Ok(Some(sig.clone()))
        };
        let options = BuildOptions {
            threads: self.threads,
        };
        match enable_file(
            &file,
            self.store.as_ref(),
            &self.params,
            options,
            &sign,
            &|| false,
            &|_| {},
        ) {
            Ok(meta) => {
                let d = &meta.descriptor;
                FileResult {
                    digest: Some(format!("{}:{}", d.algorithm(), d.digest())),
                    signer: signer.into_inner(),
                    ..FileResult::new(display, Outcome::Enabled, None)
                }
            }
            Err(EnableError::AlreadyVerity) => match read_metadata(&file) {
                Ok(Some(Ok(m))) if m.signature.as_deref() == Some(&sig[..]) => FileResult::new(
                    display,
                    Outcome::Skipped,
                    "already a verity file with the package's signature".to_owned(),
                ),
                _ => FileResult::new(
                    display,
                    Outcome::Failed,
                    "already a verity file, without the package's signature".to_owned(),
                ),
            },
            Err(e) => FileResult::new(display, Outcome::Failed, e.to_string()),
        }
    }
}

pub(crate) fn run(args: &EnableRpmArgs) -> Result<bool> {
    let pkg_name = args.package.display();
    let package = File::open(&args.package)
        .with_context(|| format!("can't open '{pkg_name}'"))
        .and_then(|f| {
            read_package(&mut std::io::BufReader::new(f))
                .with_context(|| format!("can't read '{pkg_name}'"))
        })?;
    if !package.has_verity_signatures {
        anyhow::bail!(
            "'{pkg_name}' carries no verity signatures (tag 276): sign it with `rpmsign --addsign --signverity`"
        );
    }
    let algorithm = match package.verity_algorithm {
        None => HashAlgorithm::Sha256,
        Some(id) => HashAlgorithm::from_id(id)
            .ok()
            .filter(|a| a.is_kernel_algorithm())
            .with_context(|| {
                format!("'{pkg_name}': unknown verity signature algorithm {id} (tag 277)")
            })?,
    };
    // rpmsign signs digests of 4096-byte blocks without salt (sign/rpmsignverity.h).
    let params = TreeParams::new(algorithm, DEFAULT_BLOCK_SIZE.into(), &[])
        .context("tree parameters of rpm's verity signatures")?;
    let root = File::open(&args.root)
        .with_context(|| format!("can't open the root directory '{}'", args.root.display()))?;
    let store = match &args.tree_dir {
        Some(dir) => Some(
            TreeStore::open(dir).with_context(|| format!("tree directory {}", dir.display()))?,
        ),
        // find_store looks from a file's directory upwards: start at the root.
        None => match find_store(&args.root.join("-")) {
            Some(dir) => Some(
                TreeStore::existing(&dir)
                    .with_context(|| format!("tree store {}", dir.display()))?,
            ),
            None => None,
        },
    };
    let ctx = Installed {
        root,
        root_path: &args.root,
        store,
        params,
        trusted: TrustedKeys::load(&args.trusted_keys)?,
        threads: args.threads,
    };

    let mut results = Vec::with_capacity(package.files.len());
    // Packages of many files take a while: a bar on a terminal, by files.
    let bar = super::progress::stderr_bar(
        package.files.len() as u64,
        super::progress::Unit::Files,
        args.json,
    );
    for f in &package.files {
        let display = String::from_utf8_lossy(&f.path).into_owned();
        bar.set_message(display.clone());
        let result = if let Some(reason) = skip_reason(f) {
            FileResult::new(&display, Outcome::Skipped, reason.to_owned())
        } else {
            match (relative(&f.path), f.decoded_signature()) {
                (None, _) => FileResult::new(
                    &display,
                    Outcome::Failed,
                    "unsafe path: not absolute, or with '.' or '..' components".to_owned(),
                ),
                (_, Err(reason)) => FileResult::new(&display, Outcome::Failed, reason),
                (_, Ok(None)) => {
                    FileResult::new(&display, Outcome::Skipped, "no verity signature".to_owned())
                }
                (Some(rel), Ok(Some(sig))) => ctx.enable(&display, &rel, sig),
            }
        };
        bar.inc(1);
        if !args.json {
            bar.suspend(|| match result.result {
                Outcome::Enabled => println!(
                    "enabled {} {} (signed by {})",
                    result.digest.as_deref().unwrap_or_default(),
                    result.path,
                    result.signer.as_deref().unwrap_or_default()
                ),
                Outcome::Skipped => println!(
                    "skipped {}: {}",
                    result.path,
                    result.reason.as_deref().unwrap_or_default()
                ),
                Outcome::Failed => eprintln!(
                    "fsverity-fuse: error: {}: {}",
                    result.path,
                    result.reason.as_deref().unwrap_or_default()
                ),
            });
        }
        results.push(result);
    }
    bar.finish_and_clear();
    let count = |o: Outcome| results.iter().filter(|r| r.result == o).count();
    let (enabled, failed, skipped) = (
        count(Outcome::Enabled),
        count(Outcome::Failed),
        count(Outcome::Skipped),
    );
    if args.json {
        let doc = serde_json::json!({
            "package": args.package,
            "root": args.root,
            "algorithm": algorithm.name(),
            "files": results,
            "summary": {
                "files": results.len(),
                "enabled": enabled,
                "failed": failed,
                "skipped": skipped,
            }
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("encoding JSON")?
        );
    } else {
        println!("{pkg_name}: {enabled} enabled, {failed} failed, {skipped} skipped");
    }
    Ok(failed == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_beneath_the_root() {
        assert_eq!(relative(b"/usr/bin/ls"), Some(PathBuf::from("usr/bin/ls")));
        assert_eq!(relative(b"//usr//bin/"), Some(PathBuf::from("usr/bin")));
        for bad in [
            &b"usr/bin/ls"[..],
            b"/",
            b"",
            b"/usr/../etc/passwd",
            b"/..",
            b"/./x",
        ] {
            assert_eq!(relative(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
