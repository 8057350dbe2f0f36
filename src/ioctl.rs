//! The kernel's fs-verity ioctl ABI (include/uapi/linux/fsverity.h) as FUSE
//! forwards it: command numbers, parsing of `fsverity_enable_arg` and encoding of
//! `fsverity_digest`. Pure byte handling; the raw calls live in `crate::sys`.

use crate::error::Error;
use crate::format::{HashAlgorithm, TreeParams};
use crate::store::MAX_SIGNATURE_SIZE;

/// `FS_IOC_ENABLE_VERITY` = `_IOW('f', 133, struct fsverity_enable_arg)`.
pub const FS_IOC_ENABLE_VERITY: u32 = 0x4080_6685;
/// `FS_IOC_MEASURE_VERITY` = `_IOWR('f', 134, struct fsverity_digest)`.
pub const FS_IOC_MEASURE_VERITY: u32 = 0xc004_6686;
/// `FS_IOC_READ_VERITY_METADATA` = `_IOWR('f', 135, struct fsverity_read_metadata_arg)`.
pub const FS_IOC_READ_VERITY_METADATA: u32 = 0xc028_6687;
/// `FS_IOC_GETFLAGS` = `_IOR('f', 1, long)`.
pub const FS_IOC_GETFLAGS: u32 = 0x8008_6601;
/// `FS_IOC_SETFLAGS` = `_IOW('f', 2, long)`.
pub const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
/// `FS_IOC_FSGETXATTR` = `_IOR('X', 31, struct fsxattr)`.
pub const FS_IOC_FSGETXATTR: u32 = 0x801c_581f;
/// `FS_IOC_FSSETXATTR` = `_IOW('X', 32, struct fsxattr)`.
pub const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;
/// `FS_IMMUTABLE_FL`: the file cannot be modified.
pub const FS_IMMUTABLE_FL: u32 = 0x0000_0010;
/// `FS_APPEND_FL`: the file can only be appended to.
pub const FS_APPEND_FL: u32 = 0x0000_0020;
/// The inode flag that marks verity files.
pub const FS_VERITY_FL: u32 = 0x0010_0000;
/// Size of `struct fsverity_enable_arg`.
pub const ENABLE_ARG_SIZE: usize = 128;

/// A `FS_IOC_ENABLE_VERITY` request whose argument passed the kernel's first
/// checks; the algorithm and block size are checked later, in the kernel's
/// order, by [`EnableRequest::params`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnableRequest {
    /// Hash algorithm id as given.
    pub algorithm: u32,
    /// Block size as given (a power of two).
    pub block_size: u32,
    /// Salt bytes.
    pub salt: Vec<u8>,
    /// Signature bytes, if any.
    pub signature: Option<Vec<u8>>,
}

impl EnableRequest {
    /// The tree parameters: EINVAL for an algorithm or block size this
    /// filesystem does not support (the kernel checks these after the
    /// permission, read access, file type, read-only and writer checks).
    pub fn params(&self) -> Result<TreeParams, Error> {
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
pub fn parse_enable(data: &[u8]) -> Result<EnableRequest, Error> {
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

/// Encodes the `FS_IOC_MEASURE_VERITY` reply `{u16 alg, u16 size, digest}` for a
/// caller whose request (`in_data`) announced room for `digest_size` bytes.
pub fn encode_measure(
    in_data: &[u8],
    algorithm: HashAlgorithm,
    digest: &[u8],
) -> Result<Vec<u8>, Error> {
    if in_data.len() < 4 {
        return Err(Error::InvalidArgument(
            "measure argument shorter than 4 bytes".into(),
        ));
    }
    let room = u16::from_le_bytes([in_data[2], in_data[3]]) as usize;
    if room < digest.len() {
        return Err(Error::Overflow);
    }
    let mut out = Vec::with_capacity(4 + digest.len());
    out.extend_from_slice(&u16::from(algorithm.id()).to_le_bytes());
    out.extend_from_slice(&(digest.len() as u16).to_le_bytes());
    out.extend_from_slice(digest);
    Ok(out)
}

/// Builds an `fsverity_enable_arg` (with zero pointers) followed by salt and
/// signature, as FUSE delivers it (for tests and tools).
pub fn encode_enable(
    version: u32,
    algorithm: u32,
    block_size: u32,
    salt: &[u8],
    sig: &[u8],
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let out = encode_measure(&[0, 0, 64, 0], HashAlgorithm::Sha256, &digest).expect("fits");
        assert_eq!(&out[..4], &[1, 0, 32, 0]);
        assert_eq!(&out[4..], &digest);
        let err =
            encode_measure(&[0, 0, 31, 0], HashAlgorithm::Sha256, &digest).expect_err("small");
        assert_eq!(err.errno(), libc::EOVERFLOW);
    }
}
