//! The only module with `unsafe` code: thin wrappers over libc calls that std
//! does not offer. Every block states why it is sound.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `lseek(SEEK_DATA)`: the offset of the next data at or after `offset`, or
/// `None` if there is none (only a hole up to the end).
pub(crate) fn seek_data(file: &File, offset: u64) -> io::Result<Option<u64>> {
    let offset = i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: lseek on a valid open descriptor; no memory is passed.
    let r = unsafe { libc::lseek(file.as_raw_fd(), offset, libc::SEEK_DATA) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENXIO) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(r as u64))
}

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
pub struct EnableCall<'a> {
    /// Must be 1.
    pub version: u32,
    /// Algorithm id.
    pub hash_algorithm: u32,
    /// Block size.
    pub block_size: u32,
    /// Salt bytes.
    pub salt: &'a [u8],
    /// Signature bytes.
    pub signature: &'a [u8],
    /// `__reserved1`.
    pub reserved1: u32,
    /// First word of `__reserved2`.
    pub reserved2: u64,
}

/// `ioctl(FS_IOC_ENABLE_VERITY)`.
pub fn enable_verity(file: &impl AsRawFd, call: &EnableCall<'_>) -> io::Result<()> {
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
            crate::ioctl::FS_IOC_ENABLE_VERITY as _,
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
pub fn measure_verity(file: &impl AsRawFd, room: u16) -> io::Result<(u16, Vec<u8>)> {
    let mut buf = vec![0u8; 4 + usize::from(room)];
    buf[2..4].copy_from_slice(&room.to_le_bytes());
    // SAFETY: `buf` holds a struct fsverity_digest header announcing `room` bytes
    // of digest space, all of which it owns.
    let r = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            crate::ioctl::FS_IOC_MEASURE_VERITY as _,
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
pub fn read_verity_metadata(
    file: &impl AsRawFd,
    kind: u64,
    offset: u64,
    buf: &mut [u8],
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
            crate::ioctl::FS_IOC_READ_VERITY_METADATA as _,
            &arg as *const ReadMetadataArg,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `fork()`: `Ok(Some(child))` in the parent, `Ok(None)` in the child. Only for
/// a process that has not started any thread yet (daemonizing at startup).
pub fn fork() -> io::Result<Option<i32>> {
    // SAFETY: called before any thread exists (the mount helper forks first
    // thing), so the child's single thread inherits consistent state.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        child => Ok(Some(child)),
    }
}

/// Caps glibc's malloc arenas at `n`. By default glibc gives up to eight per
/// core to a threaded process, and memory freed in one (a forgotten inode's,
/// an evicted tree block's) is not reused by the others: the daemon's RSS grew
/// past its cache budget with many threads. A no-op elsewhere than glibc.
pub fn limit_malloc_arenas(n: i32) {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes any
    // positive count and is safe to set at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, n);
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = n;
}

/// A kernel file handle (`name_to_handle_at`) of an object and its mount id:
/// lets the daemon reopen the object later without keeping a descriptor.
#[derive(Clone, PartialEq, Eq)]
pub struct FileHandle {
    /// `struct file_handle`: u32 handle_bytes, i32 handle_type, then the bytes.
    raw: Vec<u8>,
    /// The mount the object lives on.
    pub mount_id: i32,
}

impl std::fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FileHandle(mount {}, {} bytes)",
            self.mount_id,
            self.raw.len()
        )
    }
}

const MAX_HANDLE_SZ: usize = 128;

/// `name_to_handle_at(fd, "", AT_EMPTY_PATH)`: the handle of the object `fd` refers to.
pub fn name_to_handle(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<FileHandle> {
    // u32-aligned storage for struct file_handle.
    let mut storage = [0u32; 2 + MAX_HANDLE_SZ / 4];
    storage[0] = MAX_HANDLE_SZ as u32;
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `storage` is a struct file_handle whose handle_bytes announces the
    // MAX_HANDLE_SZ bytes that follow it; the path is a valid empty C string and
    // `mount_id` a valid int, all alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            fd.as_raw_fd(),
            c"".as_ptr(),
            storage.as_mut_ptr(),
            &mut mount_id as *mut libc::c_int,
            libc::AT_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = 8 + (storage[0] as usize).min(MAX_HANDLE_SZ);
    let raw = storage
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .take(len)
        .collect();
    Ok(FileHandle { raw, mount_id })
}

/// `open_by_handle_at(mount_fd, handle, flags)`. Needs CAP_DAC_READ_SEARCH.
pub fn open_by_handle(
    mount_fd: std::os::fd::BorrowedFd<'_>,
    handle: &FileHandle,
    flags: rustix::fs::OFlags,
) -> io::Result<std::os::fd::OwnedFd> {
    let mut storage = [0u32; 2 + MAX_HANDLE_SZ / 4];
    for (i, chunk) in handle.raw.chunks(4).enumerate() {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        storage[i] = u32::from_ne_bytes(w);
    }
    // SAFETY: `storage` holds a struct file_handle previously filled by the kernel
    // (header and bytes), alive for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount_fd.as_raw_fd(),
            storage.as_ptr(),
            flags.bits() as libc::c_int,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as libc::c_int) })
}

/// Restores the default action of SIGPIPE (Rust ignores it at startup), so a
/// command writing into a closed pipe ends quietly like other tools.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler
    // and touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Size of `struct fsxattr` (include/uapi/linux/fs.h).
pub const FSXATTR_SIZE: usize = 28;

/// `ioctl(FS_IOC_FSGETXATTR)`: the file's `struct fsxattr`, as raw bytes.
pub fn fs_get_xattr(file: &impl AsRawFd) -> io::Result<[u8; FSXATTR_SIZE]> {
    let mut buf = [0u32; FSXATTR_SIZE / 4];
    // SAFETY: `buf` is a 28-byte, 4-aligned buffer the kernel fills with a
    // struct fsxattr; it lives for the call.
    let r = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            crate::ioctl::FS_IOC_FSGETXATTR as _,
            buf.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = [0u8; FSXATTR_SIZE];
    for (o, w) in out.chunks_exact_mut(4).zip(buf) {
        o.copy_from_slice(&w.to_ne_bytes());
    }
    Ok(out)
}

/// `ioctl(FS_IOC_FSSETXATTR)` with a raw `struct fsxattr`.
pub fn fs_set_xattr(file: &impl AsRawFd, attr: &[u8; FSXATTR_SIZE]) -> io::Result<()> {
    let mut buf = [0u32; FSXATTR_SIZE / 4];
    for (w, b) in buf.iter_mut().zip(attr.chunks_exact(4)) {
        *w = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    }
    // SAFETY: `buf` holds a 28-byte struct fsxattr the kernel only reads; it
    // lives for the call.
    let r = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            crate::ioctl::FS_IOC_FSSETXATTR as _,
            buf.as_ptr(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
