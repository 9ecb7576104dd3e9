//! Leader Completeness — Raft §5.4, Figure 3: "if a log entry is committed in a given
//! term, then that entry will be present in the logs of the leaders for all
//! higher-numbered terms." Checked whenever a node starts leading: its log (or its
//! snapshot) must hold every entry known committed. Also catches committed entries
//! lost to a crash, which would otherwise resurface as a leader without them.

use consensus::{LogIndex, NodeId, Role};

use super::{Observations, Violation};
use crate::harness::SimEngine;

/// Checks a node that leads, once per term it leads.
pub fn check<E: SimEngine>(obs: &mut Observations, id: NodeId, node: &E) -> Result<(), Violation> {
    if node.role() != Role::Leader || obs.leading.get(&id) == Some(&node.term()) {
        return Ok(());
    }
    obs.leading.insert(id, node.term());
    let snap = node.snapshot_index();
    for (&index, &(term, _)) in obs.chosen.range(LogIndex(snap.0 + 1)..) {
        if node.term_at(index) != Some(term) {
            return Err(Violation {
                invariant: "leader completeness",
                detail: format!(
                    "node {id} leads {} without committed entry {index} {term} (has {:?}, last {})",
                    node.term(),
                    node.term_at(index),
                    node.last_index()
                ),
            });
        }
    }
    Ok(())
}
