//! The write permission the enable ioctl needs, which the kernel leaves to a
//! FUSE daemon: mode bits and POSIX ACLs, as `inode_permission(MAY_WRITE)`
//! decides.

use rustix::fs::Stat;

use super::inode::InodeRef;
use crate::namespace::Caller;

/// The POSIX access ACL xattr (`system.posix_acl_access`).
const ACL_ACCESS_XATTR: &str = "system.posix_acl_access";

/// Whether `caller` may write the backing object of `inode` (stat `st`),
/// reading its access ACL if it has one.
pub(super) fn may_write_inode(inode: &InodeRef, st: &Stat, caller: Caller) -> bool {
    let path = inode.proc_path();
    let acl = match rustix::fs::getxattr_query(path.as_str(), ACL_ACCESS_XATTR) {
        Ok(n) => {
            let mut buf = vec![0u8; n];
            rustix::fs::getxattr(path.as_str(), ACL_ACCESS_XATTR, &mut buf[..])
                .ok()
                .map(|m| {
                    buf.truncate(m);
                    buf
                })
        }
        Err(_) => None,
    };
    may_write(st, acl.as_deref(), caller, &caller.groups())
}

/// `POSIX_ACL_XATTR_VERSION`.
const ACL_VERSION: u32 = 2;
const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;
const MAY_WRITE: u16 = 0o2;

/// One ACL entry: tag, permission bits (rwx = 4,2,1), qualifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AclEntry {
    tag: u16,
    perm: u16,
    id: u32,
}

/// Parses the `posix_acl_xattr` format (include/uapi/linux/posix_acl_xattr.h):
/// le32 version 2, then 8-byte entries (le16 tag, le16 perm, le32 id).
/// `None` when malformed.
fn parse_acl(bytes: &[u8]) -> Option<Vec<AclEntry>> {
    let (header, entries) = bytes.split_at_checked(4)?;
    if u32::from_le_bytes(header.try_into().ok()?) != ACL_VERSION || entries.len() % 8 != 0 {
        return None;
    }
    Some(
        entries
            .chunks_exact(8)
            .map(|e| AclEntry {
                tag: u16::from_le_bytes([e[0], e[1]]),
                perm: u16::from_le_bytes([e[2], e[3]]),
                id: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            })
            .collect(),
    )
}

/// The caller's groups: its primary group and supplementary groups.
struct Groups<'a> {
    primary: u32,
    supplementary: &'a [u32],
}

impl Groups<'_> {
    fn contains(&self, gid: u32) -> bool {
        self.primary == gid || self.supplementary.contains(&gid)
    }
}

/// Whether `caller` may write a file with `st` and access ACL `acl` (the
/// xattr's bytes, if it has one), as the kernel's `generic_permission` decides
/// it: root always may; then the owner's bits, then a named user entry, then
/// the group class (owning group and named groups, through the mask), then
/// the others' bits. A malformed ACL denies everyone but root.
fn may_write(st: &Stat, acl: Option<&[u8]>, caller: Caller, groups: &[u32]) -> bool {
    if caller.uid == 0 {
        return true;
    }
    let groups = Groups {
        primary: caller.gid,
        supplementary: groups,
    };
    let mode = st.st_mode as u16;
    let Some(acl) = acl else {
        let bits = if st.st_uid == caller.uid {
            mode >> 6
        } else if groups.contains(st.st_gid) {
            mode >> 3
        } else {
            mode
        };
        return bits & MAY_WRITE != 0;
    };
    let Some(entries) = parse_acl(acl) else {
        return false;
    };
    acl_permits(&entries, st, caller.uid, &groups, MAY_WRITE)
}

/// `posix_acl_permission` (fs/posix_acl.c).
fn acl_permits(entries: &[AclEntry], st: &Stat, uid: u32, groups: &Groups<'_>, want: u16) -> bool {
    let mask = entries
        .iter()
        .find(|e| e.tag == ACL_MASK)
        .map_or(0o7, |e| e.perm);
    if st.st_uid == uid {
        return entries
            .iter()
            .find(|e| e.tag == ACL_USER_OBJ)
            .is_some_and(|e| e.perm & want == want);
    }
    if let Some(e) = entries.iter().find(|e| e.tag == ACL_USER && e.id == uid) {
        return e.perm & mask & want == want;
    }
    let mut in_group_class = false;
    for e in entries {
        let member = match e.tag {
            ACL_GROUP_OBJ => groups.contains(st.st_gid),
            ACL_GROUP => groups.contains(e.id),
            _ => false,
        };
        if member {
            in_group_class = true;
            if e.perm & mask & want == want {
                return true;
            }
        }
    }
    if in_group_class {
        return false;
    }
    entries
        .iter()
        .find(|e| e.tag == ACL_OTHER)
        .is_some_and(|e| e.perm & want == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stat with the given mode and owner (the rest from `/`, unused).
    fn stat(mode: u32, uid: u32, gid: u32) -> Stat {
        let mut st = rustix::fs::stat("/").expect("stat /");
        st.st_mode = libc::S_IFREG | mode;
        st.st_uid = uid;
        st.st_gid = gid;
        st
    }

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = ACL_VERSION.to_le_bytes().to_vec();
        for &(tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    fn caller(uid: u32, gid: u32) -> Caller {
        Caller { uid, gid, pid: 1 }
    }

    #[test]
    fn mode_bits_without_an_acl() {
        let st = stat(0o640, 1000, 100);
        assert!(may_write(&st, None, caller(1000, 5), &[]));
        assert!(
            !may_write(&st, None, caller(1001, 100), &[]),
            "group has r only"
        );
        assert!(!may_write(&st, None, caller(1001, 5), &[100]));
        assert!(may_write(&st, None, caller(0, 0), &[]), "root");
        let st = stat(0o606, 1000, 100);
        // The owner's bits decide for the owner, even when others may write.
        assert!(!may_write(
            &stat(0o406, 1000, 100),
            None,
            caller(1000, 5),
            &[]
        ));
        assert!(may_write(&st, None, caller(1002, 7), &[]));
        assert!(
            !may_write(&st, None, caller(1002, 100), &[]),
            "group class: no w"
        );
    }

    #[test]
    fn acl_entries_decide_like_posix_acl_permission() {
        // setfacl -m u:1001:---,g:200:rw-,m::rw- on a 0666 file.
        let a = acl(&[
            (ACL_USER_OBJ, 6, u32::MAX),
            (ACL_USER, 0, 1001),
            (ACL_GROUP_OBJ, 4, u32::MAX),
            (ACL_GROUP, 6, 200),
            (ACL_MASK, 6, u32::MAX),
            (ACL_OTHER, 6, u32::MAX),
        ]);
        let st = stat(0o666, 1000, 100);
        assert!(
            !may_write(&st, Some(&a), caller(1001, 5), &[]),
            "named user denied"
        );
        assert!(
            may_write(&st, Some(&a), caller(1002, 5), &[200]),
            "named group"
        );
        assert!(
            !may_write(&st, Some(&a), caller(1003, 100), &[]),
            "owning group: r only"
        );
        assert!(may_write(&st, Some(&a), caller(1004, 5), &[]), "other");
        assert!(may_write(&st, Some(&a), caller(1000, 5), &[]), "owner");
        // The mask limits named entries.
        let masked = acl(&[
            (ACL_USER_OBJ, 6, u32::MAX),
            (ACL_USER, 6, 1001),
            (ACL_GROUP_OBJ, 4, u32::MAX),
            (ACL_MASK, 4, u32::MAX),
            (ACL_OTHER, 0, u32::MAX),
        ]);
        assert!(!may_write(&st, Some(&masked), caller(1001, 5), &[]));
        assert!(may_write(&st, Some(&masked), caller(0, 0), &[]), "root");
    }

    #[test]
    fn malformed_acls_deny() {
        let st = stat(0o666, 1000, 100);
        for bad in [&b""[..], b"\x02\0\0", b"\x01\0\0\0", b"\x02\0\0\0\x01\0"] {
            assert!(!may_write(&st, Some(bad), caller(1001, 5), &[]), "{bad:?}");
        }
    }
}
