//! The kernel's ioctl ABI as FUSE forwards it, in one place: the command
//! numbers (include/uapi/linux/fsverity.h, fs.h), parsing of
//! `fsverity_enable_arg`, `int` flags and `struct fsxattr`, and encoding of
//! `fsverity_digest`. Pure byte handling; the client-side calls (through
//! `rustix::ioctl`) are in `crate::sys`.

use crate::error::Error;
use crate::format::{HashAlgorithm, TreeParams};
use crate::store::MAX_SIGNATURE_SIZE;
use crate::sys::FSXATTR_SIZE;

/// `FS_IOC_ENABLE_VERITY` = `_IOW('f', 133, struct fsverity_enable_arg)`.
pub(crate) const FS_IOC_ENABLE_VERITY: u32 = 0x4080_6685;
/// `FS_IOC_MEASURE_VERITY` = `_IOWR('f', 134, struct fsverity_digest)`.
pub(crate) const FS_IOC_MEASURE_VERITY: u32 = 0xc004_6686;
/// `FS_IOC_READ_VERITY_METADATA` = `_IOWR('f', 135, struct fsverity_read_metadata_arg)`.
pub(crate) const FS_IOC_READ_VERITY_METADATA: u32 = 0xc028_6687;
/// `FS_IOC_GETFLAGS` = `_IOR('f', 1, long)`.
pub(crate) const FS_IOC_GETFLAGS: u32 = 0x8008_6601;
/// `FS_IOC_SETFLAGS` = `_IOW('f', 2, long)`.
pub(crate) const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
/// `FS_IOC_FSGETXATTR` = `_IOR('X', 31, struct fsxattr)`.
pub(crate) const FS_IOC_FSGETXATTR: u32 = 0x801c_581f;
/// `FS_IOC_FSSETXATTR` = `_IOW('X', 32, struct fsxattr)`.
pub(crate) const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;
/// `FS_IMMUTABLE_FL`: the file cannot be modified.
pub(crate) const FS_IMMUTABLE_FL: u32 = 0x0000_0010;
/// `FS_APPEND_FL`: the file can only be appended to.
pub(crate) const FS_APPEND_FL: u32 = 0x0000_0020;
/// The inode flag that marks verity files.
pub(crate) const FS_VERITY_FL: u32 = 0x0010_0000;
/// Size of `struct fsverity_enable_arg`.
pub(crate) const ENABLE_ARG_SIZE: usize = 128;

/// An ioctl the mount answers, decoded from what FUSE forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IoctlRequest {
    /// `FS_IOC_ENABLE_VERITY`.
    Enable(EnableRequest),
    /// `FS_IOC_MEASURE_VERITY` with room for `room` digest bytes (and
    /// `out_size` bytes in all for the reply).
    Measure {
        /// The caller's `digest_size`.
        room: u16,
        /// The kernel's room for the reply.
        out_size: u32,
    },
    /// `FS_IOC_GETFLAGS`.
    GetFlags,
    /// `FS_IOC_SETFLAGS`.
    SetFlags(u32),
    /// `FS_IOC_FSGETXATTR` (reply of at most `out_size` bytes).
    FsGetXattr {
        /// The kernel's room for the reply.
        out_size: u32,
    },
    /// `FS_IOC_FSSETXATTR`.
    FsSetXattr([u8; FSXATTR_SIZE]),
}

/// Decodes an ioctl: ENOTTY for those the mount does not answer (among them
/// `FS_IOC_READ_VERITY_METADATA`, whose output buffer FUSE cannot fill:
/// `fsverity-fuse dump-metadata` instead); the kernel's early errors for a
/// malformed enable argument.
pub(crate) fn decode(cmd: u32, in_data: &[u8], out_size: u32) -> Result<IoctlRequest, Error> {
    Ok(match cmd {
        FS_IOC_ENABLE_VERITY => IoctlRequest::Enable(parse_enable(in_data)?),
        FS_IOC_MEASURE_VERITY => IoctlRequest::Measure {
            room: measure_room(in_data)?,
            out_size,
        },
        FS_IOC_GETFLAGS => IoctlRequest::GetFlags,
        FS_IOC_SETFLAGS => IoctlRequest::SetFlags(parse_flags(in_data)?),
        FS_IOC_FSGETXATTR => IoctlRequest::FsGetXattr { out_size },
        FS_IOC_FSSETXATTR => IoctlRequest::FsSetXattr(parse_fsxattr(in_data)?),
        FS_IOC_READ_VERITY_METADATA => return Err(Error::NotTty),
        _ => return Err(Error::NotTty),
    })
}

/// The digest room a `struct fsverity_digest` announces.
fn measure_room(in_data: &[u8]) -> Result<u16, Error> {
    in_data
        .get(2..4)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| Error::InvalidArgument("measure argument shorter than 4 bytes".into()))
}

/// A `FS_IOC_ENABLE_VERITY` request whose argument passed the kernel's first
/// checks; the algorithm and block size are checked later, in the kernel's
/// order, by [`EnableRequest::params`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnableRequest {
    /// Hash algorithm id as given.
    pub(crate) algorithm: u32,
    /// Block size as given (a power of two).
    pub(crate) block_size: u32,
    /// Salt bytes.
    pub(crate) salt: Vec<u8>,
    /// Signature bytes, if any.
    pub(crate) signature: Option<Vec<u8>>,
}

impl EnableRequest {
    /// The tree parameters: EINVAL for an algorithm or block size this
    /// filesystem does not support (the kernel checks these after the
    /// permission, read access, file type, read-only and writer checks).
    pub(crate) fn params(&self) -> Result<TreeParams, Error> {
        let inval = |e: crate::format::FormatError| Error::InvalidArgument(e.to_string());
        let algorithm = HashAlgorithm::from_id(self.algorithm).map_err(inval)?;
        TreeParams::new(algorithm, self.block_size.into(), &self.salt).map_err(inval)
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

/// Parses the 128-byte `fsverity_enable_arg` followed by the salt and signature
/// bytes, with the checks the kernel makes before anything else
/// (fs/verity/enable.c, `fsverity_ioctl_enable`): EINVAL for a version other
/// than 1, non-zero reserved fields, a block size that is not a power of two;
/// EMSGSIZE for a salt over 32 bytes or a signature over 16128 bytes. The
/// pointers are the caller's addresses and are ignored.
pub(crate) fn parse_enable(data: &[u8]) -> Result<EnableRequest, Error> {
    let inval = |why: &str| Error::InvalidArgument(why.to_owned());
    if data.len() < ENABLE_ARG_SIZE {
        return Err(inval("enable argument shorter than 128 bytes"));
    }
    let (arg, rest) = data.split_at(ENABLE_ARG_SIZE);
    let version = u32_at(arg, 0);
    let algorithm = u32_at(arg, 4);
    let block_size = u32_at(arg, 8);
    let salt_size = u32_at(arg, 12) as usize;
    let sig_size = u32_at(arg, 24) as usize;
    if version != 1 {
        return Err(inval("version must be 1"));
    }
    if u32_at(arg, 28) != 0 || arg[40..].iter().any(|&b| b != 0) {
        return Err(inval("reserved fields must be zero"));
    }
    if !block_size.is_power_of_two() {
        return Err(inval("block size must be a power of two"));
    }
    if salt_size > crate::format::MAX_SALT_SIZE {
        return Err(Error::MessageSize(format!(
            "salt of {salt_size} bytes (at most 32)"
        )));
    }
    if sig_size > MAX_SIGNATURE_SIZE {
        return Err(Error::MessageSize(format!(
            "signature of {sig_size} bytes (at most {MAX_SIGNATURE_SIZE})"
        )));
    }
    if rest.len() < salt_size + sig_size {
        return Err(inval("salt or signature bytes missing"));
    }
    let signature = (sig_size > 0).then(|| rest[salt_size..salt_size + sig_size].to_vec());
    Ok(EnableRequest {
        algorithm,
        block_size,
        salt: rest[..salt_size].to_vec(),
        signature,
    })
}

/// Encodes the `FS_IOC_MEASURE_VERITY` reply `{u16 alg, u16 size, digest}`
/// for a caller with room for `room` digest bytes, in at most `out_size`
/// bytes (EOVERFLOW otherwise, as the kernel).
pub(crate) fn encode_measure(
    room: u16, out_size: u32, algorithm: HashAlgorithm, digest: &[u8],
) -> Result<Vec<u8>, Error> {
    if usize::from(room) < digest.len() {
        return Err(Error::Overflow);
    }
    let mut out = Vec::with_capacity(4 + digest.len());
    out.extend_from_slice(&u16::from(algorithm.id()).to_le_bytes());
    out.extend_from_slice(&(digest.len() as u16).to_le_bytes());
    out.extend_from_slice(digest);
    fit(out, out_size)
}

/// A reply of `out` bytes where the kernel expects at most `out_size`
/// (EOVERFLOW when it does not fit).
pub(crate) fn fit(out: Vec<u8>, out_size: u32) -> Result<Vec<u8>, Error> {
    if out.len() <= out_size as usize {
        Ok(out)
    } else {
        Err(Error::Overflow)
    }
}

/// The flags of `FS_IOC_SETFLAGS` (an `int`, as the kernel forwards it).
fn parse_flags(in_data: &[u8]) -> Result<u32, Error> {
    in_data
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| Error::InvalidArgument("flags argument shorter than 4 bytes".into()))
}

/// The `struct fsxattr` of `FS_IOC_FSSETXATTR`.
fn parse_fsxattr(in_data: &[u8]) -> Result<[u8; FSXATTR_SIZE], Error> {
    in_data
        .get(..FSXATTR_SIZE)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::InvalidArgument("struct fsxattr shorter than 28 bytes".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an `fsverity_enable_arg` (with zero pointers) followed by salt and
    /// signature, as FUSE delivers it (for tests and tools).
    fn encode_enable(
        version: u32, algorithm: u32, block_size: u32, salt: &[u8], sig: &[u8],
    ) -> Vec<u8> {
        let mut arg = vec![0u8; ENABLE_ARG_SIZE];
        arg[0..4].copy_from_slice(&version.to_le_bytes());
        arg[4..8].copy_from_slice(&algorithm.to_le_bytes());
        arg[8..12].copy_from_slice(&block_size.to_le_bytes());
        arg[12..16].copy_from_slice(&(salt.len() as u32).to_le_bytes());
        arg[24..28].copy_from_slice(&(sig.len() as u32).to_le_bytes());
        arg.extend_from_slice(salt);
        arg.extend_from_slice(sig);
        arg
    }

    #[test]
    fn parses_a_valid_request() {
        let r = parse_enable(&encode_enable(1, 2, 1024, b"salt", b"sig")).expect("valid");
        assert_eq!(
            r.params().expect("supported"),
            TreeParams::new(HashAlgorithm::Sha512, 1024, b"salt").expect("params")
        );
        assert_eq!(r.signature.as_deref(), Some(&b"sig"[..]));
    }

    #[test]
    fn kernel_errors() {
        let errno = |d: Vec<u8>| parse_enable(&d).expect_err("invalid").errno();
        let late = |d: Vec<u8>| {
            parse_enable(&d)
                .expect("first checks pass")
                .params()
                .expect_err("unsupported")
                .errno()
        };
        assert_eq!(errno(encode_enable(2, 1, 4096, b"", b"")), libc::EINVAL);
        assert_eq!(late(encode_enable(1, 9, 4096, b"", b"")), libc::EINVAL);
        assert_eq!(errno(encode_enable(1, 1, 4095, b"", b"")), libc::EINVAL);
        assert_eq!(late(encode_enable(1, 1, 512, b"", b"")), libc::EINVAL);
        assert_eq!(
            errno(encode_enable(1, 1, 4096, &[0; 33], b"")),
            libc::EMSGSIZE
        );
        assert_eq!(
            errno(encode_enable(1, 1, 4096, b"", &vec![0; 16129])),
            libc::EMSGSIZE
        );
        let mut reserved = encode_enable(1, 1, 4096, b"", b"");
        reserved[100] = 1;
        assert_eq!(errno(reserved), libc::EINVAL);
        let mut reserved1 = encode_enable(1, 1, 4096, b"", b"");
        reserved1[28] = 1;
        assert_eq!(errno(reserved1), libc::EINVAL);
        assert_eq!(errno(vec![0; 10]), libc::EINVAL);
    }

    #[test]
    fn measure_reply_and_overflow() {
        let digest = [9u8; 32];
        let out = encode_measure(64, 68, HashAlgorithm::Sha256, &digest).expect("fits");
        assert_eq!(&out[..4], &[1, 0, 32, 0]);
        assert_eq!(&out[4..], &digest);
        let err = encode_measure(31, 68, HashAlgorithm::Sha256, &digest).expect_err("small");
        assert_eq!(err.errno(), libc::EOVERFLOW);
        let err = encode_measure(64, 20, HashAlgorithm::Sha256, &digest).expect_err("kernel room");
        assert_eq!(err.errno(), libc::EOVERFLOW);
    }

    #[test]
    fn decodes_what_the_mount_answers() {
        assert_eq!(
            decode(FS_IOC_GETFLAGS, &[], 4).expect("decodes"),
            IoctlRequest::GetFlags
        );
        assert_eq!(
            decode(FS_IOC_MEASURE_VERITY, &[1, 0, 64, 0], 68).expect("decodes"),
            IoctlRequest::Measure {
                room: 64,
                out_size: 68
            }
        );
        assert_eq!(
            decode(FS_IOC_READ_VERITY_METADATA, &[0; 40], 0)
                .expect_err("no")
                .errno(),
            libc::ENOTTY
        );
        assert_eq!(
            decode(0x1234, &[], 0).expect_err("unknown").errno(),
            libc::ENOTTY
        );
        assert_eq!(
            decode(FS_IOC_MEASURE_VERITY, &[1], 68)
                .expect_err("short")
                .errno(),
            libc::EINVAL
        );
    }

    #[test]
    fn flag_arguments() {
        assert_eq!(parse_flags(&0x10u32.to_le_bytes()).expect("4 bytes"), 0x10);
        assert_eq!(
            parse_flags(&[1, 2]).expect_err("short").errno(),
            libc::EINVAL
        );
        assert_eq!(parse_fsxattr(&[7; 28]).expect("28 bytes"), [7; 28]);
        assert_eq!(
            parse_fsxattr(&[7; 27]).expect_err("short").errno(),
            libc::EINVAL
        );
    }
}
