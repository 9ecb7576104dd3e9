//! Election Safety — Raft §5.2, Figure 3: "at most one leader can be elected in a given
//! term." For Multi-Paxos: at most one distinguished proposer per ballot.

use consensus::{NodeId, Role};

use super::{Observations, Violation};
use crate::harness::SimEngine;

/// Records `node` if it leads, failing if another node led the same term.
pub fn check<E: SimEngine>(obs: &mut Observations, id: NodeId, node: &E) -> Result<(), Violation> {
    if node.role() != Role::Leader {
        return Ok(());
    }
    let term = node.term();
    match obs.leaders.get(&term) {
        Some(&other) if other != id => Err(Violation {
            invariant: "election safety",
            detail: format!("nodes {other} and {id} both led {term}"),
        }),
        Some(_) => Ok(()),
        None => {
            obs.leaders.insert(term, id);
            Ok(())
        }
    }
}
