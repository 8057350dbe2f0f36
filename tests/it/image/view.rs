//! A tree as a comparable value: every path with its type, mode, owners,
//! mtime, link count, size, device number, xattrs, symlink target, hard link
//! group and contents. Built from a directory (the source, or a kernel mount;
//! xattrs read with `getfattr`, an independent tool) or from our reader.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use fsverity_fuse::image::{Content, FileType, Image, Ino};

/// Where a regular file's bytes can be read.
#[derive(Debug, Clone)]
pub(crate) enum Data {
    /// A file to read.
    File(PathBuf),
    /// The bytes themselves.
    Bytes(Vec<u8>),
}

/// One path of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) kind: char,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: (i64, u32),
    pub(crate) nlink: u64,
    /// `None` where sizes are not comparable (directories of different filesystems).
    pub(crate) size: Option<u64>,
    pub(crate) rdev: u64,
    pub(crate) xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub(crate) target: Option<Vec<u8>>,
    /// The first path (in sorted order) of the inode, for files with several links.
    pub(crate) link_group: Option<String>,
}

/// A whole tree: relative path ("" for the root) to entry and data.
pub(crate) type View = BTreeMap<String, (Entry, Option<Data>)>;

fn kind_char(mode: u32) -> char {
    match mode & 0o170000 {
        0o100000 => 'f',
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '?',
    }
}

/// Every xattr under `root`, by absolute path, as `getfattr` reports them.
fn getfattr(root: &Path) -> HashMap<PathBuf, BTreeMap<Vec<u8>, Vec<u8>>> {
    let out = Command::new("getfattr")
        .args([
            "-R",
            "-P",
            "-h",
            "-d",
            "-m",
            "-",
            "-e",
            "hex",
            "--absolute-names",
        ])
        .arg(root)
        .output()
        .expect("run getfattr (Debian package attr)");
    assert!(
        out.status.success(),
        "getfattr failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all = HashMap::new();
    let mut current: Option<PathBuf> = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(path) = line.strip_prefix("# file: ") {
            current = Some(PathBuf::from(path));
        } else if let (Some(path), false) = (&current, line.is_empty()) {
            let (name, value) = line.split_once('=').unwrap_or((line, ""));
            let value = match value.strip_prefix("0x") {
                Some(hex) => hex::decode(hex).expect("getfattr hex value"),
                None => Vec::new(),
            };
            all.entry(path.clone())
                .or_insert_with(BTreeMap::new)
                .insert(name.as_bytes().to_vec(), value);
        }
    }
    all
}

/// `/a/b` for `ROOT/a/b`, and "" for the root itself.
fn rel(root: &Path, path: &Path) -> String {
    let r = path.strip_prefix(root).expect("under root");
    if r.as_os_str().is_empty() {
        return String::new();
    }
    format!("/{}", String::from_utf8_lossy(r.as_os_str().as_bytes()))
}

/// Fills in hard link groups from an inode key per path.
fn group_links<K: std::hash::Hash + Eq>(view: &mut View, keys: &HashMap<String, K>) {
    let mut first: HashMap<&K, String> = HashMap::new();
    for path in view.keys() {
        first.entry(&keys[path]).or_insert_with(|| path.clone());
    }
    for (path, (e, _)) in view.iter_mut() {
        if e.kind != 'd' && e.nlink > 1 {
            e.link_group = Some(first[&keys[path]].clone());
        }
    }
}

/// The view of a directory tree (the source, or a mount). Directory sizes are
/// kept only if `dir_sizes`.
pub(crate) fn of_dir(root: &Path, dir_sizes: bool) -> View {
    let root = root.canonicalize().expect("canonical root");
    let xattrs = getfattr(&root);
    let mut view = View::new();
    let mut keys = HashMap::new();
    let mut stack = vec![root.clone()];
    while let Some(path) = stack.pop() {
        let m = std::fs::symlink_metadata(&path).expect("lstat");
        let kind = kind_char(m.mode());
        let r = rel(&root, &path);
        if kind == 'd' {
            for e in std::fs::read_dir(&path).expect("read_dir") {
                stack.push(e.expect("dir entry").path());
            }
        }
        let entry = Entry {
            kind,
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            mtime: (m.mtime(), m.mtime_nsec() as u32),
            nlink: m.nlink(),
            size: (kind != 'd' || dir_sizes).then_some(m.size()),
            rdev: m.rdev(),
            xattrs: xattrs.get(&path).cloned().unwrap_or_default(),
            target: (kind == 'l').then(|| {
                std::fs::read_link(&path)
                    .expect("readlink")
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            }),
            link_group: None,
        };
        keys.insert(r.clone(), (m.dev(), m.ino()));
        view.insert(r, (entry, (kind == 'f').then(|| Data::File(path.clone()))));
    }
    group_links(&mut view, &keys);
    view
}

/// The view of a parsed image, objects read from `objects`.
pub(crate) fn of_image(img: &Image, objects: &Path) -> View {
    let mut view = View::new();
    let mut keys = HashMap::new();
    let mut stack: Vec<(Ino, String)> = vec![(img.root(), String::new())];
    while let Some((ino, path)) = stack.pop() {
        let a = img.attr(ino).expect("attr");
        if a.kind == FileType::Directory {
            for e in img.readdir(ino).expect("readdir").skip(2) {
                let name = String::from_utf8_lossy(e.name);
                let child = if path.is_empty() {
                    format!("/{name}")
                } else {
                    format!("{path}/{name}")
                };
                assert_eq!(img.lookup(ino, e.name).expect("lookup"), Some(e.ino));
                assert_eq!(img.attr(e.ino).expect("attr").kind, e.kind);
                stack.push((e.ino, child));
            }
        }
        let data = match a.kind {
            FileType::Regular => Some(match img.content(ino).expect("content") {
                Content::Empty => Data::Bytes(Vec::new()),
                Content::Inline(d) => {
                    // Through read_at: a sparse file can be larger than the image.
                    let mut bytes = vec![0u8; d.len() as usize];
                    let n = d.read_at(0, &mut bytes);
                    assert_eq!(n as u64, d.len(), "read_at of the whole file");
                    Data::Bytes(bytes)
                }
                Content::External(e) => Data::File(objects.join(e.object_path())),
            }),
            _ => None,
        };
        let entry = Entry {
            kind: kind_char(a.mode),
            mode: a.mode,
            uid: a.uid,
            gid: a.gid,
            mtime: (a.mtime, a.mtime_nsec),
            nlink: u64::from(a.nlink),
            size: Some(a.size),
            rdev: a.rdev,
            xattrs: img
                .xattrs(ino)
                .expect("xattrs")
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect(),
            target: (a.kind == FileType::Symlink)
                .then(|| img.readlink(ino).expect("readlink").to_vec()),
            link_group: None,
        };
        keys.insert(path.clone(), ino);
        view.insert(path, (entry, data));
    }
    group_links(&mut view, &keys);
    view
}

/// Reads a data source in 1 MiB pieces, calling `f` on each.
fn stream(data: &Data, mut f: impl FnMut(&[u8])) {
    match data {
        Data::Bytes(b) => f(b),
        Data::File(p) => {
            let mut file = File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file
                    .read(&mut buf)
                    .unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                if n == 0 {
                    break;
                }
                f(&buf[..n]);
            }
        }
    }
}

/// True if two data sources hold the same bytes.
fn same_bytes(a: &Data, b: &Data) -> bool {
    use sha2::Digest as _;
    let digest = |d: &Data| {
        let mut h = sha2::Sha256::new();
        stream(d, |b| h.update(b));
        h.finalize()
    };
    digest(a) == digest(b)
}

/// Asserts that two views are equal, naming the first path that differs.
#[track_caller]
pub(crate) fn assert_same(left: &View, right: &View, what: &str) {
    let lk: Vec<&String> = left.keys().collect();
    let rk: Vec<&String> = right.keys().collect();
    assert_eq!(lk, rk, "{what}: different sets of paths");
    for (path, (le, ld)) in left {
        let (re, rd) = &right[path];
        assert_eq!(le, re, "{what}: '{path}' differs");
        if let (Some(ld), Some(rd)) = (ld, rd) {
            assert!(
                same_bytes(ld, rd),
                "{what}: '{path}' has different contents"
            );
        }
    }
}
