//! Log Matching — Raft §5.3, Figure 3: "if two logs contain an entry with the same
//! index and term, then the logs are identical in all entries up through the given
//! index." Checked inductively: every (index, term) ever persisted anywhere must have one
//! content and one predecessor term; by induction on the index, equal (index, term)
//! then implies equal prefixes.

use consensus::{Entry, NodeId, Term};

use super::{entry_hash, Observations, Violation};

/// Checks entries a node is about to persist; `prev_term` is the term of the entry
/// before the first one (None if unknown, e.g. compacted).
pub fn check_persisted(
    obs: &mut Observations,
    id: NodeId,
    entries: &[Entry],
    mut prev_term: Option<Term>,
) -> Result<(), Violation> {
    for e in entries {
        let seen = (entry_hash(e), prev_term);
        match obs.entries.get(&(e.index, e.term)) {
            None => {
                obs.entries.insert((e.index, e.term), seen);
            }
            Some(&(hash, prev)) => {
                if hash != seen.0 {
                    return Err(Violation {
                        invariant: "log matching",
                        detail: format!(
                            "node {id} persisted a different entry at {} {}",
                            e.index, e.term
                        ),
                    });
                }
                if let (Some(a), Some(b)) = (prev, seen.1) {
                    if a != b {
                        return Err(Violation {
                            invariant: "log matching",
                            detail: format!(
                                "node {id}: entry {} {} follows {b}, elsewhere {a}",
                                e.index, e.term
                            ),
                        });
                    }
                }
            }
        }
        prev_term = Some(e.term);
    }
    Ok(())
}
