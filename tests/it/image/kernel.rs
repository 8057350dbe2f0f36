//! The kernel as the reference reader: an image mounted the way
//! `mount.composefs` mounts it (EROFS on a loop device, overlayfs over it with
//! the object store as a data-only layer), or as plain EROFS. Each mount lives
//! in its own temporary directory and is unmounted in `Drop`, even when the
//! test fails; the loop device goes with the EROFS mount (autoclear).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// True if kernel image mounts can run here: root, EROFS, overlayfs, loop.
/// Under CI=true anything missing is a failure, never a skip.
pub(crate) fn kernel_mounts_available() -> bool {
    let fs = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let has = |name: &str| {
        fs.lines()
            .any(|l| l.split_whitespace().last() == Some(name))
    };
    let missing: Vec<&str> = [
        (!rustix::process::geteuid().is_root()).then_some("root"),
        (!has("erofs")).then_some("EROFS"),
        (!has("overlay")).then_some("overlayfs"),
        (!Path::new("/dev/loop-control").exists()).then_some("/dev/loop-control"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "image mount tests need {missing:?}, and CI=true forbids skipping them"
    );
    eprintln!("skipping: image mount tests need {missing:?}");
    false
}

/// Skips the calling test (outside CI) when kernel image mounts are unavailable.
macro_rules! require_kernel_mounts {
    () => {
        if !$crate::image::kernel::kernel_mounts_available() {
            return;
        }
    };
}
pub(crate) use require_kernel_mounts;

/// Whether `path` is a mount point (per /proc/self/mountinfo).
pub(crate) fn is_mount_point(path: &Path) -> bool {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .any(|l| l.split(' ').nth(4).map(Path::new) == Some(path.as_path()))
}

/// The loop devices currently backed by `image`.
pub(crate) fn loop_devices_of(image: &Path) -> String {
    let out = Command::new("losetup")
        .arg("-j")
        .arg(image)
        .output()
        .expect("run losetup");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Mounted image; both mounts are undone in `Drop`.
#[derive(Debug)]
pub(crate) struct KernelMount {
    _dir: tempfile::TempDir,
    lower: PathBuf,
    top: Option<PathBuf>,
    image: PathBuf,
}

fn mount(args: &[&str], source: &Path, target: &Path) {
    let out = Command::new("mount")
        .args(args)
        .arg(source)
        .arg(target)
        .stdin(Stdio::null())
        .output()
        .expect("run mount");
    assert!(
        out.status.success(),
        "mount {args:?} {} {} failed: {}",
        source.display(),
        target.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        is_mount_point(target),
        "{} is not mounted",
        target.display()
    );
}

fn unmount(target: &Path) {
    for attempt in 0..50 {
        if !is_mount_point(target) {
            return;
        }
        let mut cmd = Command::new("umount");
        if attempt >= 40 {
            cmd.arg("-l");
        }
        let _ = cmd.arg(target).stderr(Stdio::null()).status();
        if is_mount_point(target) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl KernelMount {
    /// Mounts `image` as composefs does: EROFS read-only on a loop device at
    /// `lower`, then overlayfs with `objects` as a data-only lower layer.
    pub(crate) fn composefs(image: &Path, objects: &Path) -> Self {
        let mut m = Self::erofs(image);
        let top = m._dir.path().join("mnt");
        fs::create_dir(&top).expect("mkdir mnt");
        let opts = format!(
            "ro,metacopy=on,redirect_dir=on,lowerdir={}::{}",
            m.lower.display(),
            objects.display()
        );
        mount(
            &["-t", "overlay", "-o", &opts],
            Path::new("composefs"),
            &top,
        );
        m.top = Some(top);
        m
    }

    /// Mounts `image` as plain EROFS, read-only on a loop device.
    pub(crate) fn erofs(image: &Path) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fsverity-fuse-it-image-mount-")
            .tempdir()
            .expect("mount scratch dir");
        let lower = dir.path().join("lower");
        fs::create_dir(&lower).expect("mkdir lower");
        let m = Self {
            _dir: dir,
            lower,
            top: None,
            image: image.to_path_buf(),
        };
        mount(&["-t", "erofs", "-o", "loop,ro"], image, &m.lower);
        m
    }

    /// Where the tree is visible: the overlay, or the EROFS mount itself.
    pub(crate) fn root(&self) -> &Path {
        self.top.as_deref().unwrap_or(&self.lower)
    }

    /// Unmounts now and checks that nothing is left: no mount, no loop device.
    pub(crate) fn finish(mut self) {
        self.teardown();
        assert!(!is_mount_point(&self.lower), "EROFS mount left behind");
        assert_eq!(loop_devices_of(&self.image), "", "loop device left behind");
    }

    fn teardown(&mut self) {
        if let Some(top) = self.top.take() {
            unmount(&top);
        }
        unmount(&self.lower);
        // The loop device is released asynchronously after the unmount.
        for _ in 0..100 {
            if loop_devices_of(&self.image).is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for KernelMount {
    fn drop(&mut self) {
        self.teardown();
    }
}
