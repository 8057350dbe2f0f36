//! Raw fs-verity ioctls as a program would make them, for the tests that
//! need what the stock tool cannot send (non-zero reserved fields, a
//! caller-chosen digest room, FS_IOC_READ_VERITY_METADATA). Test code only:
//! the daemon makes no such calls.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;

/// `FS_IOC_ENABLE_VERITY` = `_IOW('f', 133, struct fsverity_enable_arg)`.
const FS_IOC_ENABLE_VERITY: u32 = 0x4080_6685;
/// `FS_IOC_MEASURE_VERITY` = `_IOWR('f', 134, struct fsverity_digest)`.
const FS_IOC_MEASURE_VERITY: u32 = 0xc004_6686;
/// `FS_IOC_READ_VERITY_METADATA` = `_IOWR('f', 135, struct fsverity_read_metadata_arg)`.
const FS_IOC_READ_VERITY_METADATA: u32 = 0xc028_6687;

/// `struct fsverity_enable_arg` with real pointers, for calling the kernel (or a
/// FUSE mount) directly. Fields follow include/uapi/linux/fsverity.h.
#[repr(C)]
struct EnableArg {
    version: u32,
    hash_algorithm: u32,
    block_size: u32,
    salt_size: u32,
    salt_ptr: u64,
    sig_size: u32,
    reserved1: u32,
    sig_ptr: u64,
    reserved2: [u64; 11],
}

/// The fields of an `FS_IOC_ENABLE_VERITY` call; `reserved*` exist so tests can
/// check that non-zero reserved fields are refused.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnableCall<'a> {
    /// Must be 1.
    pub(crate) version: u32,
    /// Algorithm id.
    pub(crate) hash_algorithm: u32,
    /// Block size.
    pub(crate) block_size: u32,
    /// Salt bytes.
    pub(crate) salt: &'a [u8],
    /// Signature bytes.
    pub(crate) signature: &'a [u8],
    /// `__reserved1`.
    pub(crate) reserved1: u32,
    /// First word of `__reserved2`.
    pub(crate) reserved2: u64,
}

/// `ioctl(FS_IOC_ENABLE_VERITY)`.
pub(crate) fn enable_verity(file: &impl AsRawFd, call: &EnableCall<'_>) -> io::Result<()> {
    let mut reserved2 = [0u64; 11];
    reserved2[0] = call.reserved2;
    let arg = EnableArg {
        version: call.version,
        hash_algorithm: call.hash_algorithm,
        block_size: call.block_size,
        salt_size: call.salt.len() as u32,
        salt_ptr: call.salt.as_ptr() as u64,
        sig_size: call.signature.len() as u32,
        reserved1: call.reserved1,
        sig_ptr: call.signature.as_ptr() as u64,
        reserved2,
    };
    // SAFETY: `arg` is a live, correctly laid out fsverity_enable_arg whose
    // pointers refer to the borrowed salt and signature slices, which outlive the call.
    let r = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            FS_IOC_ENABLE_VERITY as _,
            &arg as *const EnableArg,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `ioctl(FS_IOC_MEASURE_VERITY)` offering room for `room` digest bytes:
/// (algorithm id, digest).
pub(crate) fn measure_verity(file: &impl AsRawFd, room: u16) -> io::Result<(u16, Vec<u8>)> {
    let mut buf = vec![0u8; 4 + usize::from(room)];
    buf[2..4].copy_from_slice(&room.to_le_bytes());
    // SAFETY: `buf` holds a struct fsverity_digest header announcing `room` bytes
    // of digest space, all of which it owns.
    let r = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            FS_IOC_MEASURE_VERITY as _,
            buf.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let alg = u16::from_le_bytes([buf[0], buf[1]]);
    let size = usize::from(u16::from_le_bytes([buf[2], buf[3]])).min(usize::from(room));
    Ok((alg, buf[4..4 + size].to_vec()))
}

/// `ioctl(FS_IOC_READ_VERITY_METADATA)` (which FUSE cannot serve; for tests).
pub(crate) fn read_verity_metadata(
    file: &impl AsRawFd, kind: u64, offset: u64, buf: &mut [u8],
) -> io::Result<usize> {
    #[repr(C)]
    struct ReadMetadataArg {
        metadata_type: u64,
        offset: u64,
        length: u64,
        buf_ptr: u64,
        reserved: u64,
    }
    let arg = ReadMetadataArg {
        metadata_type: kind,
        offset,
        length: buf.len() as u64,
        buf_ptr: buf.as_mut_ptr() as u64,
        reserved: 0,
    };
    // SAFETY: `arg` is a correctly laid out fsverity_read_metadata_arg whose buffer
    // pointer and length describe `buf`, borrowed mutably for the call.
    let r = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            FS_IOC_READ_VERITY_METADATA as _,
            &arg as *const ReadMetadataArg,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}
