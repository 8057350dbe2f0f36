//! The only module with `unsafe` code: what neither std nor rustix offers
//! safely (fork, mallopt, SIGPIPE, file handles), the ioctls made through
//! `rustix::ioctl`, and the SIMD intrinsics of multi-buffer SHA-256
//! (`sha256x16`). Every block states why it is sound.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
mod sha256x16;

/// Multi-buffer SHA-256 of consecutive `block_size` blocks of `data`, each
/// preceded by `prefix` (empty, or a salt padded to 64 bytes), into
/// consecutive digests of `out`: sixteen blocks at a time on a CPU with
/// AVX-512 (detected at run time). Returns how many leading blocks it hashed;
/// 0 where the CPU or the block size does not allow it. The caller hashes the
/// rest one by one.
pub(crate) fn sha256_hash_blocks(
    prefix: &[u8], data: &[u8], block_size: usize, out: &mut [u8],
) -> usize {
    #[cfg(target_arch = "x86_64")]
    return sha256x16::hash_blocks(prefix, data, block_size, out);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (prefix, data, block_size, out);
        0
    }
}

use std::io;
use std::os::fd::AsRawFd;

/// `struct fsverity_digest` with room for the largest digest.
#[repr(C)]
struct DigestArg {
    algorithm: u16,
    size: u16,
    digest: [u8; crate::format::MAX_DIGEST_SIZE],
}

/// `ioctl(FS_IOC_MEASURE_VERITY)`: (algorithm id, digest).
pub(crate) fn measure_verity(file: &impl std::os::fd::AsFd) -> io::Result<(u16, Vec<u8>)> {
    use rustix::ioctl::{Updater, opcode};
    let mut arg = DigestArg {
        algorithm: 0,
        size: crate::format::MAX_DIGEST_SIZE as u16,
        digest: [0; crate::format::MAX_DIGEST_SIZE],
    };
    // SAFETY: FS_IOC_MEASURE_VERITY takes a struct fsverity_digest whose
    // `size` announces the digest room that follows; `arg` is that struct
    // with 64 bytes of room, borrowed mutably for the call. (The opcode's
    // encoded size is the 4-byte header, as in include/uapi/linux/fsverity.h.)
    unsafe {
        rustix::ioctl::ioctl(
            file,
            Updater::<{ opcode::read_write::<[u16; 2]>(b'f', 134) }, DigestArg>::new(&mut arg),
        )
    }?;
    let size = usize::from(arg.size).min(arg.digest.len());
    Ok((arg.algorithm, arg.digest[..size].to_vec()))
}

/// `fork()`: `Ok(Some(child))` in the parent, `Ok(None)` in the child. Only for
/// a process that has not started any thread yet (daemonizing at startup).
pub(crate) fn fork() -> io::Result<Option<i32>> {
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
pub(crate) fn limit_malloc_arenas(n: i32) {
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
pub(crate) struct FileHandle {
    /// `struct file_handle`: u32 handle_bytes, i32 handle_type, then the bytes.
    raw: Vec<u8>,
    /// The mount the object lives on.
    pub(crate) mount_id: i32,
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
pub(crate) fn name_to_handle(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<FileHandle> {
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
pub(crate) fn open_by_handle(
    mount_fd: std::os::fd::BorrowedFd<'_>, handle: &FileHandle, flags: rustix::fs::OFlags,
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
pub(crate) fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler
    // and touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Size of `struct fsxattr` (include/uapi/linux/fs.h).
pub(crate) const FSXATTR_SIZE: usize = 28;

/// `struct fsxattr`, as raw bytes in a 4-aligned buffer.
#[repr(C, align(4))]
struct FsXattr([u8; FSXATTR_SIZE]);

/// `ioctl(FS_IOC_FSGETXATTR)`: the file's `struct fsxattr`, as raw bytes.
pub(crate) fn fs_get_xattr(file: &impl std::os::fd::AsFd) -> io::Result<[u8; FSXATTR_SIZE]> {
    use rustix::ioctl::{Getter, opcode};
    // SAFETY: FS_IOC_FSGETXATTR (_IOR('X', 31, struct fsxattr)) writes one
    // 28-byte struct fsxattr, which FsXattr is.
    let attr = unsafe {
        rustix::ioctl::ioctl(
            file,
            Getter::<{ opcode::read::<FsXattr>(b'X', 31) }, FsXattr>::new(),
        )
    }?;
    Ok(attr.0)
}

/// `ioctl(FS_IOC_FSSETXATTR)` with a raw `struct fsxattr`.
pub(crate) fn fs_set_xattr(
    file: &impl std::os::fd::AsFd, attr: &[u8; FSXATTR_SIZE],
) -> io::Result<()> {
    use rustix::ioctl::{Setter, opcode};
    // SAFETY: FS_IOC_FSSETXATTR (_IOW('X', 32, struct fsxattr)) reads one
    // 28-byte struct fsxattr, which FsXattr is.
    unsafe {
        rustix::ioctl::ioctl(
            file,
            Setter::<{ opcode::write::<FsXattr>(b'X', 32) }, FsXattr>::new(FsXattr(*attr)),
        )
    }?;
    Ok(())
}
