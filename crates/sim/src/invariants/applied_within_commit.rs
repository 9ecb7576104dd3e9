//! applied ≤ committed — Raft Figure 2 ("If commitIndex > lastApplied: increment
//! lastApplied, apply log[lastApplied]"): nothing is applied before it is committed.

use consensus::{LogIndex, NodeId};

use super::Violation;

/// Checks one node's applied index against its commit index.
pub fn check(id: NodeId, applied: LogIndex, committed: LogIndex) -> Result<(), Violation> {
    if applied > committed {
        return Err(Violation {
            invariant: "applied ≤ committed",
            detail: format!("node {id} applied {applied} beyond commit {committed}"),
        });
    }
    Ok(())
}
