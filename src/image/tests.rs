//! Unit tests of the image module without a kernel: trees written and read
//! back, reproducibility, hand-made hostile images, and a fuzz loop over the
//! reader (bit flips, cuts, splices, random lengths): never a panic, always
//! bounded time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;
use crate::format::HashAlgorithm;
use crate::testing::Rng;

fn node(path: &str, kind: FileType, perm: u32, body: Body) -> Node {
    Node {
        path: path.into(),
        kind,
        perm,
        uid: 1000,
        gid: 100_000,
        mtime: 1_700_000_000,
        mtime_nsec: 123_456_789,
        xattrs: BTreeMap::new(),
        body,
    }
}

fn dir(path: &str) -> Node {
    node(path, FileType::Directory, 0o755, Body::Dir(BTreeMap::new()))
}

/// Adds `child` under directory `parent` as `name`; returns its index.
fn add(tree: &mut Tree, parent: usize, name: &str, child: Node) -> usize {
    tree.nodes.push(child);
    let i = tree.nodes.len() - 1;
    link(tree, parent, name, i);
    i
}

fn link(tree: &mut Tree, parent: usize, name: &str, child: usize) {
    match &mut tree.nodes[parent].body {
        Body::Dir(e) => {
            e.insert(name.as_bytes().to_vec(), child);
        }
        _ => panic!("not a directory"),
    }
}

/// A tree with every kind of file and layout the writer produces.
fn sample() -> Tree {
    let mut t = Tree::default();
    let mut root = dir("/");
    root.xattrs.insert(
        b"security.selinux".to_vec(),
        b"system_u:object_r:t".to_vec(),
    );
    t.nodes.push(root);
    let digest = HashAlgorithm::Sha256.hash(b"object");
    let mut big = node(
        "/big",
        FileType::Regular,
        0o4755,
        Body::External {
            digest,
            size: 3 << 30,
        },
    );
    big.xattrs.insert(b"user.k".to_vec(), b"v".to_vec());
    big.xattrs
        .insert(b"trusted.overlay.redirect".to_vec(), b"/escaped".to_vec());
    let big = add(&mut t, 0, "big", big);
    link(&mut t, 0, "big-link", big);
    let mut small = node(
        "/small",
        FileType::Regular,
        0o644,
        Body::Inline(b"0123456789".repeat(7)[..64].to_vec()),
    );
    small.xattrs.insert(
        b"security.selinux".to_vec(),
        b"system_u:object_r:t".to_vec(),
    );
    add(&mut t, 0, "small", small);
    add(
        &mut t,
        0,
        "empty",
        node("/empty", FileType::Regular, 0o600, Body::Inline(vec![])),
    );
    add(
        &mut t,
        0,
        "short-link",
        node(
            "/short-link",
            FileType::Symlink,
            0o777,
            Body::Symlink(b"small".to_vec()),
        ),
    );
    add(
        &mut t,
        0,
        "long-link",
        node(
            "/long-link",
            FileType::Symlink,
            0o777,
            Body::Symlink(vec![b'x'; 4095]),
        ),
    );
    add(
        &mut t,
        0,
        "chr",
        node(
            "/chr",
            FileType::CharDevice,
            0o620,
            Body::Special(makedev(136, 70000)),
        ),
    );
    add(
        &mut t,
        0,
        "blk",
        node(
            "/blk",
            FileType::BlockDevice,
            0o660,
            Body::Special(makedev(8, 1)),
        ),
    );
    add(
        &mut t,
        0,
        "fifo",
        node("/fifo", FileType::Fifo, 0o644, Body::Special(0)),
    );
    add(
        &mut t,
        0,
        "sock",
        node("/sock", FileType::Socket, 0o755, Body::Special(0)),
    );
    let sub = add(&mut t, 0, "sub", dir("/sub"));
    add(
        &mut t,
        sub,
        "wh",
        node("/sub/wh", FileType::CharDevice, 0o644, Body::Special(0)),
    );
    let many = add(&mut t, sub, "many", dir("/sub/many"));
    for i in 0..400 {
        let name = format!("entry-with-a-long-name-{i:04}");
        add(
            &mut t,
            many,
            &name,
            node(
                &name,
                FileType::Regular,
                0o644,
                Body::Inline(vec![i as u8; i % 65]),
            ),
        );
    }
    link(&mut t, many, "hardlink-to-big", big);
    t
}

fn names(img: &Image, dir: Ino) -> Vec<Vec<u8>> {
    img.readdir(dir)
        .expect("readdir")
        .map(|e| e.name.to_vec())
        .collect()
}

#[test]
fn a_written_tree_reads_back() {
    let tree = sample();
    let bytes = write_image(&tree).expect("write");
    assert_eq!(bytes.len() % 4096, 0);
    let img = Image::parse(bytes).expect("parse");
    assert!(img.is_composefs());
    let root = img.root();

    let root_names = names(&img, root);
    assert_eq!(&root_names[..2], &[b".".to_vec(), b"..".to_vec()]);
    assert_eq!(root_names.len(), 2 + 11);
    let root_attr = img.attr(root).expect("attr");
    assert_eq!(
        (root_attr.kind, root_attr.nlink, root_attr.perm()),
        (FileType::Directory, 3, 0o755)
    );
    assert_eq!(
        img.xattr(root, b"security.selinux").expect("xattr"),
        Some(&b"system_u:object_r:t"[..])
    );

    let big = img.lookup(root, b"big").expect("lookup").expect("big");
    assert_eq!(img.lookup(root, b"big-link").expect("lookup"), Some(big));
    let a = img.attr(big).expect("attr");
    assert_eq!(
        (a.mode, a.nlink, a.size, a.uid, a.gid),
        (0o104755, 3, 3 << 30, 1000, 100_000)
    );
    assert_eq!((a.mtime, a.mtime_nsec), (1_700_000_000, 123_456_789));
    let digest = HashAlgorithm::Sha256.hash(b"object");
    match img.content(big).expect("content") {
        Content::External(e) => {
            assert_eq!((e.digest, e.size), (digest, 3 << 30));
            assert_eq!(
                e.object_path(),
                format!("{}/{}", &digest.to_hex()[..2], &digest.to_hex()[2..])
            );
        }
        other => panic!("big: {other:?}"),
    }
    // Overlay's own xattrs hidden, the tree's escaped one shown under its name.
    let xattrs: BTreeMap<Vec<u8>, Vec<u8>> = img
        .xattrs(big)
        .expect("xattrs")
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(
        xattrs,
        BTreeMap::from([
            (b"trusted.overlay.redirect".to_vec(), b"/escaped".to_vec()),
            (b"user.k".to_vec(), b"v".to_vec()),
        ])
    );

    let small = img.lookup(root, b"small").expect("lookup").expect("small");
    match img.content(small).expect("content") {
        Content::Inline(d) => {
            assert_eq!(d.as_slice(), Some(&b"0123456789".repeat(7)[..64]));
            let mut buf = [0u8; 10];
            assert_eq!(d.read_at(60, &mut buf), 4);
            assert_eq!(&buf[..4], b"0123");
        }
        other => panic!("small: {other:?}"),
    }
    let empty = img.lookup(root, b"empty").expect("lookup").expect("empty");
    assert_eq!(img.content(empty).expect("content"), Content::Empty);
    let short = img
        .lookup(root, b"short-link")
        .expect("lookup")
        .expect("link");
    assert_eq!(img.readlink(short).expect("readlink"), b"small");
    let long = img
        .lookup(root, b"long-link")
        .expect("lookup")
        .expect("link");
    assert_eq!(
        img.readlink(long).expect("readlink"),
        vec![b'x'; 4095].as_slice()
    );
    let chr = img.lookup(root, b"chr").expect("lookup").expect("chr");
    assert_eq!(img.attr(chr).expect("attr").rdev, makedev(136, 70000));
    let blk = img.lookup(root, b"blk").expect("lookup").expect("blk");
    assert_eq!(img.attr(blk).expect("attr").mode, 0o060660);
    for (name, kind) in [(&b"fifo"[..], FileType::Fifo), (b"sock", FileType::Socket)] {
        let ino = img.lookup(root, name).expect("lookup").expect("found");
        assert_eq!(img.attr(ino).expect("attr").kind, kind);
    }

    // The whiteout is escaped as composefs escapes it.
    let sub = img.lookup(root, b"sub").expect("lookup").expect("sub");
    assert_eq!(img.lookup(sub, b"..").expect("lookup"), Some(root));
    let wh = img.lookup(sub, b"wh").expect("lookup").expect("wh");
    let wa = img.attr(wh).expect("attr");
    assert_eq!((wa.kind, wa.size, wa.rdev), (FileType::Regular, 0, 0));
    assert_eq!(
        img.xattr(wh, b"trusted.overlay.whiteout").expect("x"),
        Some(&b""[..])
    );
    assert_eq!(
        img.xattr(sub, b"trusted.overlay.opaque").expect("x"),
        Some(&b"x"[..])
    );
    assert_eq!(
        img.xattr(sub, b"user.overlay.whiteouts").expect("x"),
        Some(&b""[..])
    );

    // A directory of several blocks.
    let many = img.lookup(sub, b"many").expect("lookup").expect("many");
    let listed = names(&img, many);
    assert_eq!(listed.len(), 2 + 401);
    assert!(listed[2..].windows(2).all(|w| w[0] < w[1]));
    assert!(img.attr(many).expect("attr").size > 4096);
    for i in [0usize, 1, 199, 398, 399] {
        let name = format!("entry-with-a-long-name-{i:04}");
        let ino = img
            .lookup(many, name.as_bytes())
            .expect("lookup")
            .expect("entry");
        match img.content(ino).expect("content") {
            Content::Empty => assert_eq!(i % 65, 0),
            Content::Inline(d) => assert_eq!(d.to_vec(), Some(vec![i as u8; i % 65])),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(
        img.lookup(many, b"hardlink-to-big").expect("lookup"),
        Some(big)
    );
    assert_eq!(img.lookup(many, b"missing").expect("lookup"), None);
    // readdir resumes at an index in O(1).
    let mut rd = img.readdir(many).expect("readdir");
    assert_eq!(rd.len(), 403);
    assert_eq!(
        rd.nth(402).map(|e| e.name.to_vec()),
        Some(listed[402].clone())
    );
    assert_eq!(rd.next(), None);

    // Wrong kinds and numbers are typed errors.
    assert_eq!(
        img.readdir(big).err(),
        Some(QueryError::NotDirectory(big.0))
    );
    assert_eq!(img.readlink(big).err(), Some(QueryError::NotSymlink(big.0)));
    assert_eq!(img.content(root).err(), Some(QueryError::NotRegular(1)));
    assert_eq!(img.attr(Ino(0)).err(), Some(QueryError::NoInode(0)));
    assert!(img.attr(Ino(img.inode_count() + 1)).is_err());
}

#[test]
fn images_are_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Image>();
    let img = Image::parse(write_image(&sample()).expect("write")).expect("parse");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(img.readdir(img.root()).expect("readdir").count(), 13));
        }
    });
}

#[test]
fn the_same_tree_gives_the_same_bytes() {
    let a = write_image(&sample()).expect("write");
    let b = write_image(&sample()).expect("write");
    assert!(a == b, "two writes of one tree differ");
}

#[test]
fn the_writer_refuses_what_the_format_cannot_hold() {
    let mut t = Tree::default();
    t.nodes.push(dir("/"));
    add(
        &mut t,
        0,
        "dev",
        node(
            "/dev",
            FileType::CharDevice,
            0o600,
            Body::Special(makedev(5000, 1)),
        ),
    );
    assert!(matches!(
        write_image(&t),
        Err(WriteError::Device { major: 5000, .. })
    ));

    let mut t = Tree::default();
    t.nodes.push(dir("/"));
    let mut f = node("/f", FileType::Regular, 0o600, Body::Inline(vec![]));
    f.xattrs.insert(b"system.nfs4_acl".to_vec(), vec![1]);
    add(&mut t, 0, "f", f);
    assert!(matches!(write_image(&t), Err(WriteError::Xattr { .. })));

    let mut t = Tree::default();
    t.nodes.push(dir("/"));
    add(
        &mut t,
        0,
        "l",
        node(
            "/l",
            FileType::Symlink,
            0o777,
            Body::Symlink(vec![b'a'; 4096]),
        ),
    );
    assert!(matches!(write_image(&t), Err(WriteError::Symlink(_))));

    let mut t = Tree::default();
    t.nodes.push(dir("/"));
    let d = add(&mut t, 0, "d", dir("/d"));
    link(&mut t, d, "loop", 0);
    assert!(matches!(write_image(&t), Err(WriteError::Tree(_))));
}

/// Offset of the inode with node id `nid`.
fn inode_at(nid: u64) -> usize {
    nid as usize * 32
}

#[test]
fn hostile_structures_are_refused_with_typed_errors() {
    let mut t = Tree::default();
    t.nodes.push(dir("/"));
    let d = add(&mut t, 0, "d", dir("/d"));
    add(
        &mut t,
        d,
        "f",
        node(
            "/d/f",
            FileType::Regular,
            0o644,
            Body::Inline(b"x".to_vec()),
        ),
    );
    let good = write_image(&t).expect("write");
    let img = Image::parse(good.clone()).expect("parse");
    assert_eq!(img.inode_count(), 3);

    // Point the entry "f" of /d at the root: a directory linked twice.
    let root_nid = u64::from(u16::from_le_bytes([good[1024 + 14], good[1024 + 15]]));
    let pos = good
        .windows(3)
        .rposition(|w| w == b"..f")
        .expect("names of /d");
    // The entry table of /d's block: ".", "..", "f" -> the third entry's nid.
    let table = pos + 3 - (3 * 12 + 4);
    let mut bad = good.clone();
    bad[table + 24..table + 32].copy_from_slice(&root_nid.to_le_bytes());
    bad[table + 24 + 10] = 2; // file type: directory
    match Image::parse(bad) {
        Err(ImageError::Inode { problem, path, .. }) => {
            assert_eq!(problem, Problem::DirectoryLinkedTwice, "{path}");
            assert_eq!(path, "/d/f");
        }
        other => panic!("{other:?}"),
    }

    // A root nid pointing past the image.
    let mut bad = good.clone();
    bad[1024 + 14..1024 + 16].copy_from_slice(&u16::MAX.to_le_bytes());
    assert!(matches!(
        Image::parse(bad),
        Err(ImageError::Inode {
            problem: Problem::HeaderOutside(_),
            ..
        })
    ));

    // Compressed layout on the root.
    let mut bad = good.clone();
    let at = inode_at(root_nid);
    bad[at] = 0x01 | (1 << 1); // extended, COMPRESSED_FULL
    assert!(matches!(
        Image::parse(bad),
        Err(ImageError::Inode {
            problem: Problem::Layout { .. },
            ..
        })
    ));

    // Unsupported incompat feature and bad magic.
    let mut bad = good.clone();
    bad[1024 + 80] |= 0x01;
    assert_eq!(Image::parse(bad).err(), Some(ImageError::Features(1)));
    let mut bad = good.clone();
    bad[1024] ^= 0xFF;
    assert!(matches!(
        Image::parse(bad),
        Err(ImageError::BadMagic { .. })
    ));
    assert!(matches!(
        Image::parse(good[..1100].to_vec()),
        Err(ImageError::TooShort { .. })
    ));
}

/// Many directories sharing one block of entries that all point at the same
/// directories would make a naive walk quadratic; it is refused instead.
#[test]
fn shared_directory_blocks_cannot_blow_up_parsing() {
    let mut t = Tree::default();
    t.nodes.push(dir("/"));
    for i in 0..300 {
        add(&mut t, 0, &format!("d{i:03}"), dir(&format!("/d{i:03}")));
    }
    let mut img = write_image(&t).expect("write");
    // Make every subdirectory share the root's entries (flat inline tails
    // differ, so rewrite each as a flat-plain directory of the root's block).
    let sb_root = u64::from(u16::from_le_bytes([img[1024 + 14], img[1024 + 15]]));
    let root_at = inode_at(sb_root);
    let root_u = img[root_at + 16..root_at + 20].to_vec();
    let root_size = img[root_at + 8..root_at + 16].to_vec();
    let root_format = img[root_at..root_at + 2].to_vec();
    let start = Instant::now();
    let mut nid = sb_root + 2;
    let mut patched = 0;
    while inode_at(nid) + 64 <= img.len() && patched < 300 {
        let at = inode_at(nid);
        if img[at + 4..at + 6] == (0o040755u16).to_le_bytes() {
            img[at..at + 2].copy_from_slice(&root_format);
            img[at + 8..at + 16].copy_from_slice(&root_size);
            img[at + 16..at + 20].copy_from_slice(&root_u);
            patched += 1;
        }
        nid += 2;
    }
    assert!(patched > 0);
    let r = Image::parse(img);
    assert!(
        r.is_err(),
        "a directory reached from itself must be refused"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// Runs every query over every inode of a parsed image.
fn exercise(img: &Image) {
    for i in 1..=img.inode_count() {
        let ino = Ino(i);
        let a = img.attr(ino).expect("attr of a listed inode");
        let _ = img.xattrs(ino).expect("xattrs").count();
        match a.kind {
            FileType::Directory => {
                for e in img.readdir(ino).expect("readdir") {
                    let found = img.lookup(ino, e.name).expect("lookup");
                    assert_eq!(found, Some(e.ino), "lookup of a listed name");
                }
            }
            FileType::Symlink => {
                img.readlink(ino).expect("readlink");
            }
            FileType::Regular => {
                if let Content::Inline(d) = img.content(ino).expect("content") {
                    let mut buf = [0u8; 4096];
                    let _ = d.read_at(0, &mut buf);
                    let _ = d.read_at(d.len().saturating_sub(100), &mut buf);
                    let _ = d.read_at(u64::MAX - 5, &mut buf);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn fuzzed_images_never_panic_or_hang() {
    let good = write_image(&sample()).expect("write");
    exercise(&Image::parse(good.clone()).expect("parse"));
    let mut rng = Rng::new(0x5EED_1234_ABCD_0001);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut parsed = 0;
    for round in 0..20_000 {
        let mut img = good.clone();
        match round % 5 {
            0 => {
                // Flip a few bits anywhere in the metadata.
                for _ in 0..1 + rng.index(8) {
                    let at = rng.index(img.len().min(40_000));
                    img[at] ^= 1 << rng.index(8);
                }
            }
            1 => img.truncate(rng.index(good.len())),
            2 => {
                // A random 16/32/64-bit value at a random offset.
                let at = rng.index(img.len().min(40_000) - 8);
                let width = [2, 4, 8][rng.index(3)];
                let v = rng.next().to_le_bytes();
                img[at..at + width].copy_from_slice(&v[..width]);
            }
            3 => {
                // Splice a chunk of the image over another place.
                let len = 1 + rng.index(256);
                let from = rng.index(img.len() - len);
                let to = rng.index(img.len() - len);
                let chunk = img[from..from + len].to_vec();
                img[to..to + len].copy_from_slice(&chunk);
            }
            _ => {
                // Random bytes of a random length after a valid superblock.
                let len = 1152 + rng.index(20_000);
                img.truncate(len.min(img.len()));
                for b in img[1152..].iter_mut() {
                    *b = rng.next() as u8;
                }
            }
        }
        let started = Instant::now();
        if let Ok(parsed_img) = Image::parse(img) {
            exercise(&parsed_img);
            parsed += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "round {round} took {:?}",
            started.elapsed()
        );
        if Instant::now() > deadline {
            break;
        }
    }
    assert!(
        parsed > 10,
        "the mutations should leave some images parseable"
    );
}
