//! Offline checking of backing files (`fsverity-fuse verify`): every data block
//! against the tree, the tree against the descriptor, the signature against
//! trusted keys. Reports problems instead of stopping at the first.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::format::Descriptor;
use crate::merkle::{
    BlockCache, BuildOptions, NullSink, Verifier, VerifyError, build_tree, check_tree,
};
use crate::signature::TrustedKeys;
use crate::store::{TreeStore, VerityMetadata, read_metadata};

/// Most problems listed per file; the rest are counted.
const MAX_BLOCK_PROBLEMS: usize = 20;

/// What to check.
#[derive(Debug, Default)]
pub struct AuditOptions {
    /// Keys signatures must verify under (none: signatures are not checked).
    pub trusted_keys: TrustedKeys,
    /// A verity file without a valid signature is a problem.
    pub require_signatures: bool,
    /// A regular file without verity is a problem.
    pub require_verity: bool,
}

/// One thing wrong with a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Data block index, when the problem is one block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<u64>,
    /// Byte offset of that block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl Problem {
    fn file(reason: impl Into<String>) -> Self {
        Self {
            block: None,
            offset: None,
            reason: reason.into(),
        }
    }
}

/// State of a file's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureState {
    /// Not a verity file.
    NotApplicable,
    /// The file has no signature.
    Missing,
    /// Present; no trusted keys were given, so not checked.
    Unchecked,
    /// Verifies under a trusted key.
    Valid,
    /// Does not verify under any trusted key.
    Invalid,
}

/// The result for one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Whether it is a verity file.
    pub verity: bool,
    /// `alg:hex` digest of verity files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Signature state.
    pub signature: SignatureState,
    /// Whether a stored tree was found and checked (else the root was rebuilt).
    pub tree_stored: bool,
    /// Problems found.
    pub problems: Vec<Problem>,
}

/// Checks one backing file. `progress` is called with the bytes checked.
pub fn audit_file(
    path: &Path, store: Option<&TreeStore>, options: &AuditOptions, progress: &dyn Fn(u64),
) -> FileReport {
    let mut report = FileReport {
        path: path.to_path_buf(),
        verity: false,
        digest: None,
        signature: SignatureState::NotApplicable,
        tree_stored: false,
        problems: Vec::new(),
    };
    // Non-blocking: a FIFO in the tree must not hang the audit.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .and_then(|f| match f.metadata()?.is_file() {
            true => Ok(f),
            false => Err(std::io::Error::other("not a regular file")),
        });
    let file = match opened {
        Ok(f) => f,
        Err(e) => {
            report
                .problems
                .push(Problem::file(format!("cannot open: {e}")));
            return report;
        }
    };
    let meta = match read_metadata(&file) {
        Ok(None) => {
            if options.require_verity {
                report.problems.push(Problem::file("not a verity file"));
            }
            return report;
        }
        Ok(Some(Ok(m))) => m,
        Ok(Some(Err(e))) => {
            report.verity = true;
            report
                .problems
                .push(Problem::file(format!("damaged verity metadata: {e}")));
            return report;
        }
        Err(e) => {
            report
                .problems
                .push(Problem::file(format!("cannot read verity metadata: {e}")));
            return report;
        }
    };
    report.verity = true;
    let d = &meta.descriptor;
    report.digest = Some(format!("{}:{}", d.algorithm(), d.digest()));
    check_signature(&meta, options, &mut report);
    match file.metadata() {
        Ok(m) if m.len() != d.data_size() => report.problems.push(Problem::file(format!(
            "file is {} bytes, its descriptor records {}",
            m.len(),
            d.data_size()
        ))),
        Ok(_) => {}
        Err(e) => report
            .problems
            .push(Problem::file(format!("cannot stat: {e}"))),
    }
    check_data(&file, d, store, &mut report, progress);
    report
}

fn check_signature(meta: &VerityMetadata, options: &AuditOptions, report: &mut FileReport) {
    let d = &meta.descriptor;
    report.signature = match (&meta.signature, options.trusted_keys.is_empty()) {
        (None, _) => SignatureState::Missing,
        (Some(_), true) => SignatureState::Unchecked,
        (Some(sig), false) => match options.trusted_keys.verify(d.algorithm(), &d.digest(), sig) {
            Ok(_) => SignatureState::Valid,
            Err(e) => {
                report
                    .problems
                    .push(Problem::file(format!("signature: {e}")));
                SignatureState::Invalid
            }
        },
    };
    if options.require_signatures && report.signature == SignatureState::Missing {
        report.problems.push(Problem::file("no signature"));
    }
}

fn check_data(
    file: &File, d: &Descriptor, store: Option<&TreeStore>, report: &mut FileReport,
    progress: &dyn Fn(u64),
) {
    let stored = store
        .and_then(|s| s.open_tree(d).ok().flatten())
        .and_then(|mut f| {
            let mut v = Vec::new();
            f.read_to_end(&mut v).ok().map(|_| v)
        });
    let tree = match stored {
        Some(tree) => match check_tree(d, &tree) {
            Ok(()) => Some(tree),
            Err((level, index)) => {
                report.problems.push(Problem::file(format!(
                    "stored Merkle tree is damaged (level {level}, block {index}); remove it to have it rebuilt"
                )));
                None
            }
        },
        None if d.geometry().tree_size() == 0 => Some(Vec::new()),
        None => None,
    };
    let Some(tree) = tree else {
        // No usable tree: the whole data can still be checked against the root.
        match build_tree(file, d.params(), &mut NullSink, BuildOptions::default()) {
            Ok(built)
                if built.root_hash() == d.root_hash() && built.data_size() == d.data_size() => {}
            Ok(_) => report.problems.push(Problem::file(
                "data does not match the descriptor's root hash",
            )),
            Err(e) => report
                .problems
                .push(Problem::file(format!("cannot read data: {e}"))),
        }
        progress(d.data_size());
        return;
    };
    report.tree_stored = d.geometry().tree_size() > 0;
    let verifier = Verifier::new(
        d.clone(),
        Arc::new(tree),
        Arc::new(BlockCache::new(16 << 20)),
    );
    let bs = d.geometry().block_size() as u64;
    let chunk = 256 * bs;
    let mut bad = 0usize;
    let mut offset = 0;
    while offset < d.data_size() {
        let len = chunk.min(d.data_size() - offset);
        if verifier.read_verified(file, offset, len as usize).is_err() {
            // Find the failing blocks of this chunk one by one.
            let mut pos = offset;
            while pos < offset + len {
                if let Err(e) = verifier.read_verified(file, pos, bs as usize) {
                    bad += 1;
                    if bad <= MAX_BLOCK_PROBLEMS {
                        let reason = match e {
                            VerifyError::Mismatch(c) if c.level < 0 => {
                                format!(
                                    "data does not match the Merkle tree (expected {}, found {})",
                                    c.expected, c.actual
                                )
                            }
                            other => other.to_string(),
                        };
                        report.problems.push(Problem {
                            block: Some(pos / bs),
                            offset: Some(pos),
                            reason,
                        });
                    }
                }
                pos += bs;
            }
        }
        progress(len);
        offset += len;
    }
    if bad > MAX_BLOCK_PROBLEMS {
        report.problems.push(Problem::file(format!(
            "... and {} more bad blocks",
            bad - MAX_BLOCK_PROBLEMS
        )));
    }
}
