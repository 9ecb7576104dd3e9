//! Where a virtual node sits on the ring: a fixed, documented function of the node's id
//! and the virtual node's index.
//!
//! Every node computes the shard map on its own from the replicated membership, so this
//! must give the same value on every node, every build and every version — a change
//! would silently move most replicas of a running cluster. It is therefore spelled out
//! in bytes (so another implementation can reproduce it) and frozen by a test.

use crate::members::NodeId;

/// The ring position of virtual node `index` of node `node`: [`kv::key_hash`] of the 12
/// bytes `node` (u64, little-endian) followed by `index` (u32, little-endian).
///
/// Guarantees: stable across builds and versions (frozen by a test); a node's position
/// `i` does not depend on how many virtual nodes it has, so raising a node's weight
/// only adds positions and lowering it only removes them — weight changes move
/// replicas only to or from that node.
pub fn vnode_position(node: NodeId, index: u32) -> u64 {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&node.0.to_le_bytes());
    bytes[8..].copy_from_slice(&index.to_le_bytes());
    // key_hash ends with the SplitMix64 finalizer, so ids and indexes that differ in one
    // bit still land far apart: consecutive node ids do not cluster on the ring.
    kv::key_hash(&bytes)
}

#[cfg(test)]
mod tests {
    use super::vnode_position;
    use crate::members::NodeId;

    #[test]
    fn vnode_positions_are_frozen() {
        // Part of the cluster contract: changing these moves replicas in running clusters.
        // Also printed by tests/reference/frozen_values.py, written from the layout above.
        assert_eq!(vnode_position(NodeId(0), 0), 0xb81d_eccc_3941_dddc);
        assert_eq!(vnode_position(NodeId(1), 0), 0x06b9_f1a8_cb71_8e10);
        assert_eq!(vnode_position(NodeId(1), 1), 0x347e_1eea_343c_05b5);
        assert_eq!(
            vnode_position(NodeId(u64::MAX), u32::MAX),
            0x0ab1_4bd2_f195_9330
        );
    }

    #[test]
    fn position_depends_on_both_node_and_index() {
        assert_ne!(vnode_position(NodeId(1), 0), vnode_position(NodeId(0), 1));
        assert_ne!(vnode_position(NodeId(1), 0), vnode_position(NodeId(2), 0));
    }
}
