//! A promise is never broken — "Paxos Made Simple" §2.2, P1a: "An acceptor can accept a
//! proposal numbered n iff it has not responded to a prepare request having a number
//! greater than n" — and what an acceptor says survives it: "an acceptor must remember
//! this information even if it fails and then restarts" (§2.3). Checked on what an
//! acceptor *tells* others:
//! - when it sends a promise of `p`, its disk already holds a promise of at least `p`;
//!   when it acknowledges acceptances in `p`, its disk already holds them (or newer
//!   ones: an acknowledgement overtaken by a higher acceptance before the write is
//!   harmless);
//! - once it has told anyone it promised `p`, it never acknowledges an acceptance in a
//!   lower ballot, and its promised ballot — even after a restart from its disk — never
//!   falls below `p`.

use consensus::{NodeId, Term};
use paxos::{durable, Ballot, Body, Message};

use super::{Observations, Violation};
use crate::node::Disk;

fn violation(detail: String) -> Violation {
    Violation {
        invariant: "promise kept",
        detail,
    }
}

/// The promise a node restarting from `disk` would hold (as `Paxos::new` recovers it).
fn durable_promise(disk: &Disk) -> Ballot {
    let accepted = disk.entries.iter().map(|e| Ballot::from_term(e.term)).max();
    durable::promised(&disk.hard_state).max(accepted.unwrap_or(Ballot::ZERO))
}

/// Checks a promise or an acknowledged acceptance as it leaves `from`, against its disk.
pub fn check_sent(
    obs: &mut Observations,
    from: NodeId,
    msg: &Message,
    disk: &Disk,
) -> Result<(), Violation> {
    let acceptance = match &msg.body {
        Body::Promise { .. } => {
            if durable_promise(disk) < msg.ballot {
                return Err(violation(format!(
                    "node {from} sent a promise of {} before it was durable",
                    msg.ballot
                )));
            }
            false
        }
        Body::Accepted {
            through, commit, ..
        } => {
            let first = disk.entries.first().map(|e| e.index);
            let snapshot = disk
                .snapshot
                .as_ref()
                .map(|s| s.meta.index)
                .unwrap_or_default();
            let mut slot = (*commit).max(snapshot).next();
            while slot <= *through {
                let held = first
                    .filter(|f| slot >= *f)
                    .and_then(|f| disk.entries.get((slot - f) as usize))
                    .filter(|e| e.index == slot && Ballot::from_term(e.term) >= msg.ballot);
                if held.is_none() {
                    return Err(violation(format!(
                        "node {from} acknowledged slot {slot} in {} before it was durable",
                        msg.ballot
                    )));
                }
                slot = slot.next();
            }
            true
        }
        _ => return Ok(()),
    };
    let ballot = msg.ballot.to_term();
    let told = obs.promises.get(&from).copied().unwrap_or_default();
    if acceptance && ballot < told {
        return Err(violation(format!(
            "node {from} acknowledged an acceptance in {} after promising {}",
            msg.ballot,
            Ballot::from_term(told)
        )));
    }
    obs.promises.insert(from, told.max(ballot));
    Ok(())
}

/// A running node's promise covers everything it has told anyone it promised.
pub fn check_node(obs: &Observations, id: NodeId, promised: Ballot) -> Result<(), Violation> {
    let told = obs.promises.get(&id).copied().unwrap_or(Term(0));
    if promised.to_term() < told {
        return Err(violation(format!(
            "node {id} promised {} but had told others it promised {}",
            promised,
            Ballot::from_term(told)
        )));
    }
    Ok(())
}
