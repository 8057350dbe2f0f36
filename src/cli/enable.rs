//! `fsverity-fuse enable FILE...`: make files of a backing directory verity files.

use std::path::{Path, PathBuf};

use std::os::unix::fs::OpenOptionsExt;

use anyhow::{Context, Result};
use clap::Args;

use super::args::TreeArgs;
use crate::error::Error;
use crate::format::Descriptor;
use crate::merkle::BuildOptions;
use crate::signature::{Signer, TrustedKeys, parse_signature};
use crate::store::{STORE_DIR_NAME, TreeStore, enable_file};

/// Enable fs-verity on files of a backing directory.
#[derive(Args, Debug)]
pub(crate) struct EnableArgs {
    /// Files to enable.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) tree: TreeArgs,
    /// Tree store to write trees into. Default: the nearest `.fsverity-fuse`
    /// directory above the file (a mount creates one at the top of its backing
    /// directory); without one, the tree is rebuilt when the file is first opened.
    #[arg(long = "tree-dir", value_name = "DIR")]
    pub(crate) tree_dir: Option<PathBuf>,
    /// Hashing threads (0 = every core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) threads: usize,
    /// Store this signature with the file: 64 raw Ed25519 bytes (`fsverity-fuse
    /// sign`, `openssl pkeyutl -sign -rawin`) or the kernel's DER PKCS#7
    /// (`fsverity sign`). Checked against --trusted-key if given.
    #[arg(long, value_name = "SIGFILE", conflicts_with = "key")]
    pub(crate) signature: Option<PathBuf>,
    /// Sign the file while enabling with this PEM private key: Ed25519, or RSA /
    /// ECDSA with --cert.
    #[arg(long, value_name = "KEYFILE")]
    pub(crate) key: Option<PathBuf>,
    /// The X.509 certificate of an RSA or ECDSA --key.
    #[arg(long, value_name = "CERTFILE", requires = "key")]
    pub(crate) cert: Option<PathBuf>,
    /// Refuse a --signature that does not verify under these Ed25519 public
    /// keys or X.509 certificates (files, or directories of .pem/.crt/.der).
    #[arg(long = "trusted-key", value_name = "KEY")]
    pub(crate) trusted_keys: Vec<PathBuf>,
}

/// The nearest tree store above `file`.
pub(crate) fn find_store(file: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(file).ok()?;
    abs.ancestors()
        .skip(1)
        .map(|dir| dir.join(STORE_DIR_NAME))
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
}

pub(crate) fn run(args: &EnableArgs) -> Result<bool> {
    if args.signature.is_some() && args.files.len() > 1 {
        return Err(super::UsageError("--signature takes exactly one FILE".into()).into());
    }
    let key = args
        .key
        .as_deref()
        .map(|k| Signer::load(k, args.cert.as_deref()))
        .transpose()?;
    let given = match &args.signature {
        Some(p) => Some(
            std::fs::read(p).with_context(|| format!("can't read signature '{}'", p.display()))?,
        ),
        None => None,
    };
    let trusted = TrustedKeys::load(&args.trusted_keys)?;
    let sign = |d: &Descriptor| -> Result<Option<Vec<u8>>, Error> {
        if let Some(k) = &key {
            let sig = k
                .sign(d.algorithm(), &d.digest())
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
            return Ok(Some(sig));
        }
        let Some(sig) = &given else { return Ok(None) };
        parse_signature(sig).map_err(Error::from)?;
        if !trusted.is_empty() {
            trusted
                .verify(d.algorithm(), &d.digest(), sig)
                .map_err(Error::from)?;
        }
        Ok(Some(sig.clone()))
    };
    let explicit = match &args.tree_dir {
        Some(dir) => Some(
            TreeStore::open(dir).with_context(|| format!("tree directory {}", dir.display()))?,
        ),
        None => None,
    };
    // Hashing large files takes a while: a bar on a terminal, by bytes.
    let total = args
        .files
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum();
    let bar = super::progress::stderr_bar(total, super::progress::Unit::Bytes, false);
    let mut ok = true;
    for path in &args.files {
        bar.set_message(path.display().to_string());
        let found;
        let store = match (&explicit, find_store(path)) {
            (Some(s), _) => Some(s),
            (None, Some(dir)) => {
                found = TreeStore::existing(&dir)
                    .with_context(|| format!("tree store {}", dir.display()))?;
                Some(&found)
            }
            (None, None) => None,
        };
        // Non-blocking: a FIFO given by mistake is refused, not waited on.
        let result = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .with_context(|| format!("can't open '{}'", path.display()))
            .and_then(|file| {
                enable_file(
                    &file,
                    store,
                    &args.tree.params(),
                    BuildOptions {
                        threads: args.threads,
                    },
                    &sign,
                    &|| false,
                    &|n| bar.inc(n),
                )
                .with_context(|| format!("can't enable verity on '{}'", path.display()))
            });
        match result {
            Ok(meta) => bar.suspend(|| {
                let d = &meta.descriptor;
                println!("{}:{} {}", d.algorithm(), d.digest(), path.display());
                if store.is_none() && d.geometry().tree_size() > 0 {
                    eprintln!(
                        "note: no tree store found above '{}' (pass --tree-dir); its tree will be rebuilt when first opened",
                        path.display()
                    );
                }
            }),
            Err(e) => {
                bar.suspend(|| super::report(&e));
                ok = false;
            }
        }
    }
    bar.finish_and_clear();
    Ok(ok)
}
