//! Just enough of the RPM package format to enable fs-verity on a package's
//! files with the signatures `rpmsign --signverity` put in it: the lead, the
//! signature header (tag 276 `RPMSIGTAG_VERITYSIGNATURES`, base64 PKCS#7
//! signatures in file-index order; tag 277, their fs-verity hash algorithm) and
//! the main header's file list (`BASENAMES`/`DIRNAMES`/`DIRINDEXES`, `FILEMODES`,
//! `FILEFLAGS`). The payload is never read.
//!
//! Layout (rpm's docs/manual/format.md and lib/header.c): a 96-byte lead; then
//! each header is a 16-byte intro (magic `8e ad e8 01`, 4 reserved bytes, be32
//! entry count, be32 data size), 16-byte index entries (be32 tag, type, offset,
//! count) and the data store. The signature header is padded to 8 bytes.
//!
//! Pure code over a reader; every count, offset and length from the file is
//! bounded before use, so hostile input gives an error, never a panic or a huge
//! allocation.

use std::io::{self, Read};

use base64::Engine as _;

/// Size of the lead.
const LEAD_SIZE: usize = 96;
/// The lead's magic.
const LEAD_MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];
/// A header's magic, version 1, and its 4 reserved bytes.
const HEADER_MAGIC: [u8; 4] = [0x8e, 0xad, 0xe8, 0x01];
/// rpm's own limits (lib/header.c `hdrchkTags`, `hdrchkData`).
const MAX_ENTRIES: usize = 0xffff;
const MAX_DATA: usize = 256 << 20;

/// Header tags read here (rpm's include/rpm/rpmtag.h).
pub mod tag {
    /// Signature header: per-file base64 PKCS#7 fs-verity signatures.
    pub const VERITY_SIGNATURES: u32 = 276;
    /// Signature header: their fs-verity hash algorithm (1 = SHA-256).
    pub const VERITY_SIGNATURE_ALGO: u32 = 277;
    /// Whole paths, in packages older than compressed file lists.
    pub const OLD_FILENAMES: u32 = 1027;
    /// `st_mode` of each file.
    pub const FILEMODES: u32 = 1030;
    /// `RPMFILE_*` flags of each file.
    pub const FILEFLAGS: u32 = 1037;
    /// Index into `DIRNAMES` of each file.
    pub const DIRINDEXES: u32 = 1116;
    /// File name of each file.
    pub const BASENAMES: u32 = 1117;
    /// Directory names, with a trailing slash.
    pub const DIRNAMES: u32 = 1118;
}

/// `RPMFILE_CONFIG`: a `%config` file.
pub const FILE_CONFIG: u32 = 1 << 0;
/// `RPMFILE_GHOST`: a `%ghost` file, not in the payload.
pub const FILE_GHOST: u32 = 1 << 6;

/// Header data types (`rpmTagType`).
const TYPE_INT16: u32 = 3;
const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// Why a package could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    /// The file could not be read, or ended early.
    #[error("reading the package: {0}")]
    Io(#[from] io::Error),
    /// Not an RPM package.
    #[error("not an RPM package: {0}")]
    NotRpm(String),
    /// A header that breaks the format.
    #[error("{header} header: {reason}")]
    Header {
        /// "signature" or "main".
        header: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// One index entry.
#[derive(Clone, Copy, Debug)]
struct Entry {
    tag: u32,
    kind: u32,
    offset: usize,
    count: usize,
}

/// A decoded header: its index and data store.
#[derive(Debug)]
pub struct Header {
    entries: Vec<Entry>,
    data: Vec<u8>,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Header {
    /// Reads a header from `r`; `name` says which, for errors. Returns the
    /// header and its size in bytes.
    fn read(r: &mut impl Read, name: &'static str) -> Result<(Self, usize), RpmError> {
        let bad = |reason: String| RpmError::Header {
            header: name,
            reason,
        };
        let mut intro = [0u8; 16];
        r.read_exact(&mut intro)?;
        if intro[..4] != HEADER_MAGIC {
            return Err(bad(format!("bad magic {:02x?}", &intro[..4])));
        }
        let entries = be32(&intro[8..12]) as usize;
        let data = be32(&intro[12..16]) as usize;
        if entries == 0 || entries > MAX_ENTRIES {
            return Err(bad(format!("{entries} index entries (1 to {MAX_ENTRIES})")));
        }
        if data > MAX_DATA {
            return Err(bad(format!("{data} bytes of data (at most {MAX_DATA})")));
        }
        let len = entries * 16 + data;
        let mut body = Vec::new();
        r.take(len as u64).read_to_end(&mut body)?;
        if body.len() != len {
            return Err(bad(format!("cut short: {} of {len} bytes", body.len())));
        }
        let data_store = body.split_off(entries * 16);
        let entries = body
            .chunks_exact(16)
            .map(|e| Entry {
                tag: be32(&e[0..4]),
                kind: be32(&e[4..8]),
                offset: be32(&e[8..12]) as usize,
                count: be32(&e[12..16]) as usize,
            })
            .collect();
        Ok((
            Self {
                entries,
                data: data_store,
            },
            16 + len,
        ))
    }

    fn entry(&self, tag: u32) -> Option<Entry> {
        self.entries.iter().find(|e| e.tag == tag).copied()
    }

    /// The strings of a STRING, STRING_ARRAY or I18NSTRING tag.
    fn strings(&self, tag: u32) -> Result<Option<Vec<&[u8]>>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        let count = match e.kind {
            TYPE_STRING => 1,
            TYPE_STRING_ARRAY | TYPE_I18NSTRING => e.count,
            other => return Err(format!("tag {tag} has type {other}, not a string")),
        };
        let mut rest = self
            .data
            .get(e.offset..)
            .ok_or_else(|| format!("tag {tag}: offset {} outside the data", e.offset))?;
        // Every string takes at least its NUL: bound the count before allocating.
        if count > rest.len() {
            return Err(format!("tag {tag}: {count} strings cannot fit"));
        }
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| format!("tag {tag}: string {i} is not terminated"))?;
            out.push(&rest[..end]);
            rest = &rest[end + 1..];
        }
        Ok(Some(out))
    }

    /// The values of an integer tag of `size` bytes (2 or 4), big-endian.
    fn integers(&self, tag: u32, kind: u32, size: usize) -> Result<Option<Vec<u32>>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if e.kind != kind {
            return Err(format!("tag {tag} has type {}, expected {kind}", e.kind));
        }
        let bytes = e
            .count
            .checked_mul(size)
            .and_then(|n| e.offset.checked_add(n))
            .and_then(|end| self.data.get(e.offset..end))
            .ok_or_else(|| format!("tag {tag}: {} values outside the data", e.count))?;
        Ok(Some(
            bytes
                .chunks_exact(size)
                .map(|c| c.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b)))
                .collect(),
        ))
    }
}

/// A file of the package, in file-index order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageFile {
    /// The absolute path the package installs it at, as bytes.
    pub path: Vec<u8>,
    /// Its `st_mode`.
    pub mode: u32,
    /// Its `RPMFILE_*` flags.
    pub flags: u32,
    /// Its base64 verity signature as stored (may be empty, may hold newlines).
    pub verity_signature: Vec<u8>,
}

impl PackageFile {
    /// Whether the package installs a regular file here.
    pub fn is_regular(&self) -> bool {
        self.mode & 0o170000 == 0o100000
    }

    /// The decoded PKCS#7 signature; `None` when the package gives none.
    pub fn decoded_signature(&self) -> Result<Option<Vec<u8>>, String> {
        let text: Vec<u8> = self
            .verity_signature
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if text.is_empty() {
            return Ok(None);
        }
        base64::engine::general_purpose::STANDARD
            .decode(&text)
            .map(Some)
            .map_err(|e| format!("verity signature is not base64: {e}"))
    }
}

/// What [`read_package`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// The files, in file-index order.
    pub files: Vec<PackageFile>,
    /// Whether the package carries verity signatures (`rpmsign --signverity`).
    pub has_verity_signatures: bool,
    /// Tag 277: the fs-verity hash algorithm of the signed digests, if given.
    pub verity_algorithm: Option<u32>,
}

/// Reads a package's lead and headers from `r` (left at the payload).
pub fn read_package(r: &mut impl Read) -> Result<Package, RpmError> {
    let mut lead = [0u8; LEAD_SIZE];
    r.read_exact(&mut lead).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => RpmError::NotRpm("shorter than an RPM lead".into()),
        _ => RpmError::Io(e),
    })?;
    if lead[..4] != LEAD_MAGIC {
        return Err(RpmError::NotRpm(format!(
            "lead magic {:02x?}, expected {LEAD_MAGIC:02x?}",
            &lead[..4]
        )));
    }
    let (signature, size) = Header::read(r, "signature")?;
    let mut pad = vec![0u8; (8 - size % 8) % 8];
    r.read_exact(&mut pad)?;
    let (main, _) = Header::read(r, "main")?;
    let sig_err = |reason| RpmError::Header {
        header: "signature",
        reason,
    };
    let main_err = |reason| RpmError::Header {
        header: "main",
        reason,
    };

    let paths = file_paths(&main).map_err(main_err)?;
    let n = paths.len();
    let per_file = |tag: u32, values: Option<Vec<u32>>| -> Result<Vec<u32>, RpmError> {
        match values {
            Some(v) if v.len() == n => Ok(v),
            None if n == 0 => Ok(Vec::new()),
            other => Err(main_err(format!(
                "tag {tag} has {} values for {n} files",
                other.map_or(0, |v| v.len())
            ))),
        }
    };
    let modes = per_file(
        tag::FILEMODES,
        main.integers(tag::FILEMODES, TYPE_INT16, 2)
            .map_err(main_err)?,
    )?;
    let flags = per_file(
        tag::FILEFLAGS,
        main.integers(tag::FILEFLAGS, TYPE_INT32, 4)
            .map_err(main_err)?,
    )?;
    let signatures = signature.strings(tag::VERITY_SIGNATURES).map_err(sig_err)?;
    let has_verity_signatures = signatures.is_some();
    let signatures = signatures.unwrap_or_else(|| vec![&b""[..]; n]);
    if signatures.len() != n {
        return Err(sig_err(format!(
            "{} verity signatures for {n} files",
            signatures.len()
        )));
    }
    let verity_algorithm = match signature
        .integers(tag::VERITY_SIGNATURE_ALGO, TYPE_INT32, 4)
        .map_err(sig_err)?
    {
        None => None,
        Some(v) => Some(
            *v.first()
                .ok_or_else(|| sig_err("empty verity algorithm tag".into()))?,
        ),
    };
    let files = paths
        .into_iter()
        .zip(modes)
        .zip(flags)
        .zip(signatures)
        .map(|(((path, mode), flags), sig)| PackageFile {
            path,
            mode,
            flags,
            verity_signature: sig.to_vec(),
        })
        .collect();
    Ok(Package {
        files,
        has_verity_signatures,
        verity_algorithm,
    })
}

/// The files' paths: directory name + base name, or the old whole-path list.
fn file_paths(main: &Header) -> Result<Vec<Vec<u8>>, String> {
    let Some(base) = main.strings(tag::BASENAMES)? else {
        let old = main.strings(tag::OLD_FILENAMES)?.unwrap_or_default();
        return Ok(old.into_iter().map(<[u8]>::to_vec).collect());
    };
    let dirs = main
        .strings(tag::DIRNAMES)?
        .ok_or("BASENAMES without DIRNAMES")?;
    let index = main
        .integers(tag::DIRINDEXES, TYPE_INT32, 4)?
        .ok_or("BASENAMES without DIRINDEXES")?;
    if index.len() != base.len() {
        return Err(format!(
            "{} DIRINDEXES for {} BASENAMES",
            index.len(),
            base.len()
        ));
    }
    base.iter()
        .zip(index)
        .map(|(name, i)| {
            let dir = dirs
                .get(i as usize)
                .ok_or_else(|| format!("directory index {i} of {} directories", dirs.len()))?;
            Ok([*dir, *name].concat())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header with `entries` (tag, type, count, data) laid out in order.
    fn header(entries: &[(u32, u32, u32, &[u8])]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, kind, count, bytes) in entries {
            for v in [*tag, *kind, data.len() as u32, *count] {
                index.extend_from_slice(&v.to_be_bytes());
            }
            data.extend_from_slice(bytes);
        }
        let mut out = vec![0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    fn package(sig: &[u8], main: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; LEAD_SIZE];
        out[..4].copy_from_slice(&LEAD_MAGIC);
        out.extend_from_slice(sig);
        out.resize(out.len() + (8 - sig.len() % 8) % 8, 0);
        out.extend_from_slice(main);
        out
    }

    fn sample() -> Vec<u8> {
        let sig = header(&[
            (tag::VERITY_SIGNATURES, TYPE_STRING_ARRAY, 2, b"AAEC\n\0\0"),
            (tag::VERITY_SIGNATURE_ALGO, TYPE_INT32, 1, &[0, 0, 0, 1]),
        ]);
        let main = header(&[
            (tag::FILEMODES, TYPE_INT16, 2, &[0x81, 0xa4, 0x41, 0xed]),
            (tag::FILEFLAGS, TYPE_INT32, 2, &[0, 0, 0, 1, 0, 0, 0, 0]),
            (tag::DIRINDEXES, TYPE_INT32, 2, &[0, 0, 0, 1, 0, 0, 0, 0]),
            (tag::BASENAMES, TYPE_STRING_ARRAY, 2, b"a.conf\0bin\0"),
            (tag::DIRNAMES, TYPE_STRING_ARRAY, 2, b"/usr/\0/etc/\0"),
        ]);
        package(&sig, &main)
    }

    #[test]
    fn reads_files_and_signatures() {
        let p = read_package(&mut &sample()[..]).expect("valid package");
        assert!(p.has_verity_signatures);
        assert_eq!(p.verity_algorithm, Some(1));
        assert_eq!(p.files.len(), 2);
        assert_eq!(p.files[0].path, b"/etc/a.conf");
        assert_eq!(p.files[0].mode, 0o100644);
        assert!(p.files[0].is_regular() && p.files[0].flags & FILE_CONFIG != 0);
        assert_eq!(p.files[0].decoded_signature(), Ok(Some(vec![0, 1, 2])));
        assert_eq!(p.files[1].path, b"/usr/bin");
        assert!(!p.files[1].is_regular());
        assert_eq!(p.files[1].decoded_signature(), Ok(None));
    }

    /// Every truncation and thousands of byte mutations: an error or a package,
    /// never a panic.
    #[test]
    fn hostile_packages_never_panic() {
        let good = sample();
        for n in 0..good.len() {
            assert!(read_package(&mut &good[..n]).is_err(), "cut at {n}");
        }
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut bad = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % bad.len() as u64) as usize;
                bad[at] = match next() % 4 {
                    0 => 0xff,
                    1 => 0,
                    _ => next() as u8,
                };
            }
            if let Ok(p) = read_package(&mut &bad[..]) {
                for f in &p.files {
                    let _ = f.decoded_signature();
                }
            }
        }
    }
}
