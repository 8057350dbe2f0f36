//! Running a mount: checks, the FUSE session, signals, clean unmount.

pub(crate) mod kernel;
pub(crate) mod mountinfo;
pub(crate) mod notify;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fuser::{Config, Session, SessionACL};

use crate::fs::{FsOptions, SetupError, VerityFs};
use crate::fuse::{FuseAdapter, Ttls};
use kernel::OwnMount;

/// Everything a mount needs.
#[derive(Clone, Debug)]
pub struct MountConfig {
    /// Directory presented.
    pub backing: PathBuf,
    /// An image mount: `backing` is the image, verified with these.
    pub image: Option<crate::fs::ImageOptions>,
    /// Where it is presented.
    pub mountpoint: PathBuf,
    /// Filesystem options.
    pub fs: FsOptions,
    /// Let other users in (with kernel permission checks).
    pub allow_other: bool,
    /// Forbid executing programs from the mount.
    pub noexec: bool,
    /// Request-handling threads.
    pub threads: usize,
    /// Attribute and entry cache lifetimes.
    pub ttl: Ttls,
    /// Kernel readahead for the mount in KiB (0: the kernel's default, 128).
    pub readahead_kb: u32,
}

/// Why a mount could not start.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount point is unusable.
    #[error("mount point {path}: {reason}")]
    Mountpoint {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// FUSE is not available.
    #[error(
        "/dev/fuse is not available ({0}); load the fuse module (modprobe fuse) or run where FUSE is allowed"
    )]
    NoFuse(io::Error),
    /// The backing directory or tree store is unusable.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The kernel refused the mount.
    #[error("mounting {mountpoint} failed")]
    Mount {
        /// The mount point.
        mountpoint: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The session ended with an error.
    #[error("FUSE session failed")]
    Session(#[source] io::Error),
}

fn check_dir(path: &Path, what: &str) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("{what} is not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(format!("{what} does not exist")),
        Err(e) => Err(e.to_string()),
    }
}

/// A daemon that was killed leaves its mount behind, answering ENOTCONN: a new
/// mount on top would be unreachable. Such a dead fsverity-fuse mount is
/// detached first (only that: any other error or filesystem is left alone).
fn clear_dead_mount(mountpoint: &Path) {
    let Err(e) = std::fs::metadata(mountpoint) else {
        return;
    };
    if e.raw_os_error() != Some(libc::ENOTCONN) {
        return;
    }
    // The mount point itself cannot be resolved: resolve its parent.
    let (Some(parent), Some(name)) = (mountpoint.parent(), mountpoint.file_name()) else {
        return;
    };
    let Ok(parent) = parent.canonicalize() else {
        return;
    };
    let mountpoint = parent.join(name);
    let mountpoint = mountpoint.as_path();
    let ours = crate::mount::mountinfo::is_fsverity_mount(mountpoint);
    if ours {
        tracing::warn!(mountpoint = %mountpoint.display(), "detaching the dead mount of a previous daemon");
        let _ = rustix::mount::unmount(mountpoint, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Larger kernel readahead means larger READ requests (up to 1 MiB): fewer
/// round trips and more blocks hashed per request on sequential reads. The
/// device number comes from mountinfo: a stat of the mount point would wait for
/// this very daemon, which is not serving yet.
fn set_readahead(own: &OwnMount, kb: u32) {
    let knob = format!("/sys/class/bdi/{}/read_ahead_kb", own.device());
    if let Err(e) = std::fs::write(&knob, kb.to_string()) {
        tracing::debug!(knob, error = %e, "cannot set the readahead");
    }
}

/// Every inode the kernel holds keeps a descriptor open: allow as many as the
/// system permits (root may raise the hard limit up to fs.nr_open).
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let want = Rlimit {
        current: Some(nr_open),
        maximum: Some(nr_open),
    };
    if setrlimit(Resource::Nofile, want).is_ok() {
        return;
    }
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise the open file limit");
        }
    }
}

/// A mounted filesystem that has not started serving yet.
#[derive(Debug)]
pub struct Mounted {
    session: Session<FuseAdapter>,
    own: OwnMount,
    signals: signal_hook::iterator::Signals,
}

/// Checks the configuration and mounts. The filesystem is live (the kernel has
/// initialised the connection) when this returns; call [`Mounted::serve`].
pub fn mount(config: &MountConfig) -> Result<Mounted, MountError> {
    clear_dead_mount(&config.mountpoint);
    check_dir(&config.mountpoint, "it").map_err(|reason| MountError::Mountpoint {
        path: config.mountpoint.clone(),
        reason,
    })?;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(MountError::NoFuse)?;
    let mountpoint = config
        .mountpoint
        .canonicalize()
        .map_err(|e| MountError::Mountpoint {
            path: config.mountpoint.clone(),
            reason: e.to_string(),
        })?;
    if let Ok(backing) = config.backing.canonicalize()
        && mountpoint != backing
        && mountpoint.starts_with(&backing)
    {
        return Err(MountError::Mountpoint {
            path: config.mountpoint.clone(),
            reason: format!(
                "it lies inside the backing directory {}; the mount would contain itself",
                backing.display()
            ),
        });
    }
    raise_fd_limit();
    crate::sys::limit_malloc_arenas(2);
    // The kernel applied the caller's umask already (FUSE_DONT_MASK is not
    // negotiated): the daemon's own must not mask the modes again.
    rustix::process::umask(rustix::fs::Mode::empty());
    // Before the mount is visible, so an early SIGTERM unmounts cleanly.
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(MountError::Session)?;
    let fs = Arc::new(match &config.image {
        Some(image) => VerityFs::new_image(&config.backing, config.fs.clone(), image.clone())?,
        None => VerityFs::new(&config.backing, config.fs.clone())?,
    });

    let fsname = fs.source().display().to_string();
    let spec = kernel::MountSpec {
        mountpoint: &mountpoint,
        fsname: &fsname,
        read_only: config.fs.read_only || config.image.is_some(),
        noexec: config.noexec,
        allow_other: config.allow_other,
    };
    let mount_err = |source| MountError::Mount {
        mountpoint: mountpoint.clone(),
        source,
    };
    let (fuse_fd, own) = kernel::mount(&spec).map_err(mount_err)?;
    fs.set_mount_state(Arc::new(own.clone()));
    let mut fuse_config = Config::default();
    fuse_config.n_threads = Some(config.threads.max(1));
    fuse_config.clone_fd = config.threads > 1;
    let acl = if config.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    let adapter = FuseAdapter::new(fs, config.ttl);
    // fuser only serves the connection: it holds no mount, so it never
    // unmounts anything (see `kernel`).
    let session = match Session::from_fd(adapter, fuse_fd, acl, fuse_config) {
        Ok(s) => s,
        Err(e) => {
            let _ = own.unmount();
            return Err(mount_err(e));
        }
    };
    if config.readahead_kb > 0 {
        set_readahead(&own, config.readahead_kb);
    }
    Ok(Mounted {
        session,
        own,
        signals,
    })
}

impl Mounted {
    /// Serves requests until the filesystem is unmounted or SIGINT/SIGTERM/SIGHUP
    /// arrives (then unmounts its own mount: lazily if it is busy, so the daemon
    /// ends once the last user closes it).
    pub fn serve(self) -> Result<(), MountError> {
        let own = self.own.clone();
        let mut signals = self.signals;
        let handle = signals.handle();
        let asked_to_stop = Arc::new(AtomicBool::new(false));
        let stop_flag = asked_to_stop.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    stop_flag.store(true, Ordering::SeqCst);
                    tracing::info!(signal = sig, mountpoint = %own.mountpoint().display(), "unmounting");
                    match own.unmount() {
                        Ok(kernel::Unmounted::Done) => {}
                        Ok(kernel::Unmounted::Detached) => tracing::warn!(
                            "mount busy: detached it; serving open files until they close"
                        ),
                        Ok(kernel::Unmounted::NotOurs) if own.is_live() => {
                            // Covered by a later mount: unmounting by path would
                            // take that one. Stop serving instead: the kernel
                            // ends the connection when this process exits, and
                            // the covered mount answers ENOTCONN until it is
                            // unmounted (the next mount at the path detaches it).
                            tracing::warn!(
                                "another mount covers this daemon's mount; leaving both in place and ending the session"
                            );
                            std::process::exit(0);
                        }
                        Ok(kernel::Unmounted::NotOurs) => {
                            tracing::info!("the mount is already gone");
                        }
                        Err(e) => tracing::error!(error = %e, "unmount failed"),
                    }
                }
            })
            .map_err(MountError::Session)?;
        let result = self.session.run();
        handle.close();
        match result {
            // When the last user of a detached (lazily unmounted) mount goes
            // away, the kernel tears the connection down and a reader of
            // /dev/fuse may see ECONNABORTED instead of ENODEV. That is the end
            // of an unmount, not a failure, unless the mount is still there
            // (someone aborted the connection through /sys/fs/fuse/connections).
            Err(e)
                if e.raw_os_error() == Some(libc::ECONNABORTED)
                    && (asked_to_stop.load(Ordering::SeqCst) || !self.own.is_live()) =>
            {
                tracing::info!("the kernel ended the connection after the unmount");
                Ok(())
            }
            other => other.map_err(MountError::Session),
        }
    }
}
