//! `fsverity-fuse keygen` and `fsverity-fuse sign`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::args::TreeArgs;
use crate::merkle::{BuildOptions, NullSink, build_tree};
use crate::signature::{PrivateKey, Signer};

/// Generate an Ed25519 key pair in OpenSSL's PEM formats.
#[derive(Args, Debug)]
pub(crate) struct KeygenArgs {
    /// Where to write the PKCS#8 PEM private key (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub(crate) private: PathBuf,
    /// Where to write the SubjectPublicKeyInfo PEM public key.
    #[arg(long, value_name = "FILE")]
    pub(crate) public: PathBuf,
}

fn create_new(path: &Path, mode: u32, contents: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| {
            format!(
                "can't create '{}' (existing files are never overwritten)",
                path.display()
            )
        })?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing '{}'", path.display()))
}

pub(crate) fn keygen(args: &KeygenArgs) -> Result<bool> {
    if args.public.exists() {
        anyhow::bail!(
            "can't create '{}': it exists (existing files are never overwritten)",
            args.public.display()
        );
    }
    let key = PrivateKey::generate().context("reading random bytes")?;
    create_new(&args.private, 0o600, &key.to_pem()?)?;
    create_new(&args.public, 0o644, &key.public().to_pem()?)?;
    println!(
        "wrote private key {} and public key {}",
        args.private.display(),
        args.public.display()
    );
    Ok(true)
}

/// Sign a file's fs-verity digest (like `fsverity sign`): with an Ed25519 key,
/// 64 raw bytes; with an RSA or ECDSA key and its certificate, the kernel's PKCS#7
/// format (for RSA, byte for byte what `fsverity sign` writes).
#[derive(Args, Debug)]
pub(crate) struct SignArgs {
    /// The file to sign.
    pub(crate) file: PathBuf,
    /// Where to write the signature.
    pub(crate) sigfile: PathBuf,
    /// PEM private key: Ed25519 (PKCS#8), or RSA / ECDSA P-256 / P-384 (PKCS#8,
    /// PKCS#1 or SEC1) together with --cert.
    #[arg(long, value_name = "KEYFILE")]
    pub(crate) key: PathBuf,
    /// The X.509 certificate (PEM or DER) of an RSA or ECDSA --key: makes a
    /// kernel-format PKCS#7 signature.
    #[arg(long, value_name = "CERTFILE")]
    pub(crate) cert: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) tree: TreeArgs,
}

pub(crate) fn sign(args: &SignArgs) -> Result<bool> {
    let key = Signer::load(&args.key, args.cert.as_deref())?;
    let file =
        File::open(&args.file).with_context(|| format!("can't open '{}'", args.file.display()))?;
    let d = build_tree(
        &file,
        &args.tree.params(),
        &mut NullSink,
        BuildOptions::default(),
    )
    .with_context(|| format!("error reading '{}'", args.file.display()))?;
    let sig = key.sign(d.algorithm(), &d.digest())?;
    std::fs::write(&args.sigfile, sig)
        .with_context(|| format!("writing '{}'", args.sigfile.display()))?;
    println!(
        "Signed file '{}' ({}:{})",
        args.file.display(),
        d.algorithm(),
        d.digest()
    );
    Ok(true)
}
