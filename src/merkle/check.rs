//! Checking a whole serialized tree against a descriptor (offline tools).

use crate::format::{BlockHasher, Descriptor};

/// Checks every block of `tree` against its parent, up to the descriptor's root.
/// Returns the (level, index) of the first block that does not match.
pub fn check_tree(descriptor: &Descriptor, tree: &[u8]) -> Result<(), (usize, u64)> {
    let g = descriptor.geometry();
    if tree.len() as u64 != g.tree_size() {
        return Err((0, 0));
    }
    let hasher = BlockHasher::new(descriptor.algorithm(), descriptor.params().salt());
    let bs = g.block_size();
    let ds = g.digest_size();
    for level in (0..g.num_levels()).rev() {
        for index in 0..g.level_blocks(level) {
            let off = g.tree_offset(level, index) as usize;
            let actual = hasher.hash(&tree[off..off + bs]);
            let expected = if level + 1 == g.num_levels() {
                descriptor.root_hash().as_bytes()
            } else {
                let (parent, slot) = g.hash_location(index);
                let p = g.tree_offset(level + 1, parent) as usize + slot;
                &tree[p..p + ds]
            };
            if actual.as_bytes() != expected {
                return Err((level, index));
            }
        }
    }
    Ok(())
}
