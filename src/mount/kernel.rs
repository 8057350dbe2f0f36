//! Mounting and unmounting at the kernel, with the mount's identity kept.
//!
//! The daemon mounts the FUSE connection itself (mount(2) as root, the
//! setuid `fusermount3` otherwise) and hands the `/dev/fuse` descriptor to
//! fuser, which therefore never unmounts anything on its own. The mount is
//! identified by its device number (`0:NN` in /proc/self/mountinfo, one per
//! FUSE connection), and the daemon only ever unmounts the mount it made:
//! the topmost mount at its mount point, when that mount still carries its
//! device number. Once the kernel has ended the connection (after `umount`)
//! the daemon unmounts nothing, so a newer mount at the same path is safe.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::mount::{MountFlags, UnmountFlags};

use crate::mount::mountinfo::{self, FSTYPE, MountEntry};

/// What the kernel mount looks like.
#[derive(Clone, Debug)]
pub(crate) struct MountSpec<'a> {
    /// Canonical mount point.
    pub(crate) mountpoint: &'a Path,
    /// Shown as the mount's source (the backing directory or image).
    pub(crate) fsname: &'a str,
    /// `ro` instead of `rw`.
    pub(crate) read_only: bool,
    /// `noexec`.
    pub(crate) noexec: bool,
    /// Let every user in (the kernel checks permissions).
    pub(crate) allow_other: bool,
}

/// The mount this daemon made.
#[derive(Clone, Debug)]
pub(crate) struct OwnMount {
    mountpoint: PathBuf,
    device: String,
    privileged: bool,
}

/// `fusermount3`, the setuid helper that mounts for unprivileged users.
const FUSERMOUNT: &str = "fusermount3";

/// Mounts a new FUSE connection: the `/dev/fuse` descriptor to serve, and the
/// mount's identity.
pub(crate) fn mount(spec: &MountSpec<'_>) -> io::Result<(OwnedFd, OwnMount)> {
    let privileged = rustix::process::geteuid().is_root();
    let fd = if privileged {
        mount_syscall(spec)?
    } else {
        mount_fusermount(spec)?
    };
    let device = topmost(spec.mountpoint)
        .filter(|e| e.fstype == FSTYPE)
        .map(|e| e.device)
        .ok_or_else(|| io::Error::other("the new mount does not show in /proc/self/mountinfo"))?;
    Ok((
        fd,
        OwnMount {
            mountpoint: spec.mountpoint.to_path_buf(),
            device,
            privileged,
        },
    ))
}

fn mount_syscall(spec: &MountSpec<'_>) -> io::Result<OwnedFd> {
    let flags = rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC;
    let fd = rustix::fs::open("/dev/fuse", flags, rustix::fs::Mode::empty())?;
    let mut data = format!(
        "fd={},rootmode=40000,user_id={},group_id={},default_permissions",
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    if spec.allow_other {
        data.push_str(",allow_other");
    }
    let mut flags = MountFlags::NOSUID | MountFlags::NODEV;
    if spec.read_only {
        flags |= MountFlags::RDONLY;
    }
    if spec.noexec {
        flags |= MountFlags::NOEXEC;
    }
    let data = std::ffi::CString::new(data).map_err(io::Error::other)?;
    rustix::mount::mount(
        spec.fsname,
        spec.mountpoint,
        FSTYPE,
        flags,
        Some(data.as_c_str()),
    )?;
    Ok(fd)
}

/// `fsname` as one `-o` value: commas and backslashes escaped as libfuse does.
fn escape_option(value: &str) -> String {
    value.replace('\\', "\\\\").replace(',', "\\,")
}

fn mount_fusermount(spec: &MountSpec<'_>) -> io::Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    // The child's end stays inheritable: fusermount3 finds it in _FUSE_COMMFD.
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::empty(),
        None,
    )?;
    rustix::io::fcntl_setfd(&ours, rustix::io::FdFlags::CLOEXEC)?;
    let mut options = vec![
        if spec.read_only { "ro" } else { "rw" }.to_owned(),
        "nosuid".into(),
        "nodev".into(),
        "default_permissions".into(),
        format!("fsname={}", escape_option(spec.fsname)),
        "subtype=fsverity-fuse".into(),
    ];
    if spec.noexec {
        options.push("noexec".into());
    }
    if spec.allow_other {
        options.push("allow_other".into());
    }
    let child = Command::new(FUSERMOUNT)
        .arg("-o")
        .arg(options.join(","))
        .arg("--")
        .arg(spec.mountpoint)
        .env(
            "_FUSE_COMMFD",
            std::os::fd::AsRawFd::as_raw_fd(&theirs).to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {FUSERMOUNT}: {e}")))?;
    drop(theirs);
    let received = receive_fd(&ours);
    drop(ours);
    let output = child.wait_with_output()?;
    match received {
        Ok(fd) => Ok(fd),
        Err(e) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stderr = stderr.trim();
            Err(io::Error::new(
                e.kind(),
                if stderr.is_empty() {
                    format!("{FUSERMOUNT} failed: {e}")
                } else {
                    format!("{FUSERMOUNT}: {stderr}")
                },
            ))
        }
    }
}

/// The `/dev/fuse` descriptor fusermount3 passes back (SCM_RIGHTS).
fn receive_fd(socket: &OwnedFd) -> io::Result<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut byte = [0u8; 1];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    loop {
        let mut iov = [io::IoSliceMut::new(&mut byte)];
        match rustix::net::recvmsg(
            socket.as_fd(),
            &mut iov,
            &mut ancillary,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(msg) if msg.bytes == 0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "no descriptor received",
                ));
            }
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    for message in ancillary.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message
            && let Some(fd) = fds.next()
        {
            return Ok(fd);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "no descriptor in the message",
    ))
}

/// The mount visible at `mountpoint`: the last mounted there.
fn topmost(mountpoint: &Path) -> Option<MountEntry> {
    mountinfo::entries()
        .into_iter()
        .rfind(|e| e.mountpoint == mountpoint)
}

/// What [`OwnMount::unmount`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unmounted {
    /// Unmounted now.
    Done,
    /// Busy: detached; the kernel ends the connection when the last user leaves.
    Detached,
    /// Not ours any more (already unmounted, or another mount covers it): left alone.
    NotOurs,
}

impl OwnMount {
    /// The mount point.
    pub(crate) fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The device number (`major:minor`) of the connection.
    pub(crate) fn device(&self) -> &str {
        &self.device
    }

    /// Our entry in mountinfo, if the mount still exists (anywhere at its mount
    /// point, covered or not).
    pub(crate) fn entry(&self) -> Option<MountEntry> {
        mountinfo::entries()
            .into_iter()
            .find(|e| e.device == self.device && e.mountpoint == self.mountpoint)
    }

    /// Whether the mount still exists.
    pub(crate) fn is_live(&self) -> bool {
        self.entry().is_some()
    }

    /// Unmounts this daemon's mount, and only it: when the topmost mount at the
    /// mount point is not this connection, nothing is done.
    pub(crate) fn unmount(&self) -> io::Result<Unmounted> {
        if topmost(&self.mountpoint).is_none_or(|e| e.device != self.device) {
            return Ok(Unmounted::NotOurs);
        }
        if !self.privileged {
            return fusermount_unmount(&self.mountpoint);
        }
        match rustix::mount::unmount(&self.mountpoint, UnmountFlags::empty()) {
            Ok(()) => Ok(Unmounted::Done),
            Err(rustix::io::Errno::BUSY) => {
                rustix::mount::unmount(&self.mountpoint, UnmountFlags::DETACH)?;
                Ok(Unmounted::Detached)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl crate::fs::MountState for OwnMount {
    fn flags(&self) -> Option<crate::fs::MountFlags> {
        self.entry().map(|e| crate::fs::MountFlags {
            read_only: e.read_only(),
            super_read_only: e.super_read_only(),
        })
    }
}

fn fusermount_unmount(mountpoint: &Path) -> io::Result<Unmounted> {
    let run = |lazy: bool| -> io::Result<bool> {
        let mut args: Vec<OsString> = vec!["-u".into(), "-q".into()];
        if lazy {
            args.push("-z".into());
        }
        args.push("--".into());
        args.push(mountpoint.as_os_str().to_owned());
        Ok(Command::new(FUSERMOUNT)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?
            .success())
    };
    if run(false)? {
        return Ok(Unmounted::Done);
    }
    if run(true)? {
        return Ok(Unmounted::Detached);
    }
    Err(io::Error::other(format!(
        "{FUSERMOUNT} -u {} failed",
        String::from_utf8_lossy(mountpoint.as_os_str().as_bytes())
    )))
}

/// Changes the flags of a live mount (`mount -o remount,...`): read-only or
/// read-write, exec/noexec, suid/nosuid... Only what the kernel can change
/// without the daemon.
pub(crate) fn remount(mountpoint: &Path, flags: MountFlags) -> io::Result<()> {
    match topmost(mountpoint) {
        Some(e) if e.fstype == FSTYPE => {}
        _ => {
            return Err(io::Error::other(format!(
                "{} is not an fsverity-fuse mount",
                mountpoint.display()
            )));
        }
    }
    rustix::mount::mount_remount(mountpoint, flags, "")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsname_escaping() {
        assert_eq!(escape_option("/a,b\\c"), "/a\\,b\\\\c");
        assert_eq!(escape_option("/plain"), "/plain");
    }
}
