//! State Machine Safety — Raft §5.4.3, Figure 3: "if a server has applied a log entry
//! at a given index to its state machine, no other server will ever apply a different
//! log entry for the same index." Checked on the stronger form: every entry any node
//! considers committed agrees with every other, and so does every entry applied.

use consensus::{Entry, NodeId, Payload};

use super::{entry_hash, Observations, Violation};
use crate::harness::SimEngine;

fn record(obs: &mut Observations, id: NodeId, e: &Entry, what: &str) -> Result<(), Violation> {
    let seen = (e.term, entry_hash(e));
    match obs.chosen.get(&e.index) {
        Some(&known) if known != seen => Err(Violation {
            invariant: "state machine safety",
            detail: format!(
                "node {id} {what} {} {} but {} {} was committed there",
                e.index, e.term, e.index, known.0
            ),
        }),
        Some(_) => Ok(()),
        None => {
            obs.chosen.insert(e.index, seen);
            if let Payload::Config(change) = &e.payload {
                obs.configs.insert(e.index, change.clone());
            }
            Ok(())
        }
    }
}

/// Compares the entries a node newly considers committed with what is known committed.
pub fn check_commit<E: SimEngine>(
    obs: &mut Observations,
    id: NodeId,
    node: &E,
) -> Result<(), Violation> {
    let commit = node.commit_index();
    let from = obs.commit_checked.get(&id).copied().unwrap_or_default();
    let mut i = from.next().max(node.snapshot_index().next());
    while i <= commit {
        if let Some(e) = node.entry(i) {
            record(obs, id, &e, "committed")?;
        }
        i = i.next();
    }
    obs.commit_checked.insert(id, commit);
    Ok(())
}

/// Checks an entry as a node applies it.
pub fn check_apply(obs: &mut Observations, id: NodeId, e: &Entry) -> Result<(), Violation> {
    record(obs, id, e, "applied")
}

/// A node restarted: its commit index may be lower now; re-check from there.
pub fn forget_node(obs: &mut Observations, id: NodeId) {
    obs.commit_checked.remove(&id);
    obs.leading.remove(&id);
    obs.learned_checked.remove(&id);
    obs.acks_recorded.remove(&id);
}
