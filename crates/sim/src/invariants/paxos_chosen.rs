//! At most one value is chosen per slot, and a chosen value never changes — "Paxos Made
//! Simple" §2.2: P2 ("if a proposal with value v is chosen, then every higher-numbered
//! proposal that is chosen has value v") and the stronger P2b it is proved through
//! ("…every higher-numbered proposal issued by any proposer has value v").
//!
//! "Chosen" is the paper's definition, observed independently of what any node believes:
//! a value is chosen in a slot once a quorum of that slot's voters has *acknowledged*
//! accepting it in one ballot — an `Accepted` whose `through` covers the slot left the
//! acceptor while its disk held the value in that ballot. Also checked: a ballot proposes
//! one value per slot, and every value a node learns as chosen is the one a quorum chose.

use consensus::{LogIndex, NodeId, Term};
use paxos::{durable, Ballot, Body, Message, Paxos};

use super::{entry_hash, Observations, Violation};
use crate::node::Disk;

fn violation(detail: String) -> Violation {
    Violation {
        invariant: "one value chosen per slot",
        detail,
    }
}

/// Records the acceptances node `from` acknowledges with `msg`, read from its disk.
pub fn check_sent(
    obs: &mut Observations,
    from: NodeId,
    msg: &Message,
    disk: &Disk,
) -> Result<(), Violation> {
    let Body::Accepted { through, .. } = &msg.body else {
        return Ok(());
    };
    let ballot = msg.ballot.to_term();
    let (recorded_ballot, recorded_to) = obs.acks_recorded.get(&from).copied().unwrap_or_default();
    let lo = if recorded_ballot == ballot {
        recorded_to
    } else {
        LogIndex(0)
    };
    let acknowledged: Vec<(LogIndex, u64)> = disk
        .entries
        .iter()
        .filter(|e| e.index > lo && e.index <= *through && e.term == ballot)
        .filter_map(|e| match durable::from_entry(e) {
            Ok(Some(a)) => Some((e.index, entry_hash(&a.value.to_entry(e.index)))),
            _ => None,
        })
        .collect();
    obs.acks_recorded.insert(from, (ballot, (*through).max(lo)));
    for (slot, hash) in acknowledged {
        record(obs, from, slot, ballot, hash)?;
    }
    Ok(())
}

/// Records the acceptances a leader (of `ballot`) just made durable: it counts them at
/// once, with no message to observe.
pub fn check_own_acceptances(
    obs: &mut Observations,
    id: NodeId,
    ballot: Ballot,
    entries: &[consensus::Entry],
) -> Result<(), Violation> {
    let term = ballot.to_term();
    for e in entries.iter().filter(|e| e.term == term) {
        if let Ok(Some(a)) = durable::from_entry(e) {
            record(
                obs,
                id,
                e.index,
                term,
                entry_hash(&a.value.to_entry(e.index)),
            )?;
        }
    }
    Ok(())
}

fn record(
    obs: &mut Observations,
    from: NodeId,
    slot: LogIndex,
    ballot: Term,
    hash: u64,
) -> Result<(), Violation> {
    let voters = obs.voters_at(slot);
    let per_slot = obs.acceptances.entry(slot).or_default();
    let (value, acceptors) = per_slot.entry(ballot).or_insert((hash, Default::default()));
    if *value != hash {
        return Err(violation(format!(
            "ballot {} proposed two values in slot {slot}",
            Ballot::from_term(ballot)
        )));
    }
    acceptors.insert(from);
    let quorum = acceptors.intersection(&voters).count() > voters.len() / 2;
    if let Some(&(chosen_in, chosen)) = obs.paxos_chosen.get(&slot) {
        if ballot >= chosen_in && hash != chosen {
            return Err(violation(format!(
                "slot {slot}: a value was chosen in {}, yet node {from} accepted another in {}",
                Ballot::from_term(chosen_in),
                Ballot::from_term(ballot)
            )));
        }
        if !quorum || chosen_in <= ballot {
            return Ok(());
        }
    } else if !quorum {
        return Ok(());
    }
    // Chosen in `ballot`: every acceptance in a higher ballot must carry the same value.
    for (&later, &(other, _)) in per_slot.range(ballot..) {
        if other != hash {
            return Err(violation(format!(
                "slot {slot}: chosen in {}, but ballot {} proposed another value",
                Ballot::from_term(ballot),
                Ballot::from_term(later)
            )));
        }
    }
    obs.paxos_chosen.insert(slot, (ballot, hash));
    match obs.chosen.get(&slot) {
        Some(&(_, learned)) if learned != hash => Err(violation(format!(
            "slot {slot}: a node learned a value other than the one chosen in {}",
            Ballot::from_term(ballot)
        ))),
        _ => Ok(()),
    }
}

/// Every value a node has learned as chosen is the one a quorum is seen to have chosen.
pub fn check_learned(obs: &mut Observations, id: NodeId, node: &Paxos) -> Result<(), Violation> {
    let commit = node.commit_index();
    let from = obs.learned_checked.get(&id).copied().unwrap_or_default();
    let mut slot = from.max(node.snapshot_index()).next();
    while slot <= commit {
        if let (Some(e), Some(&(ballot, chosen))) = (node.entry(slot), obs.paxos_chosen.get(&slot))
        {
            if entry_hash(&e) != chosen {
                return Err(violation(format!(
                    "node {id} learned slot {slot} holds a value other than the one chosen in {}",
                    Ballot::from_term(ballot)
                )));
            }
        }
        slot = slot.next();
    }
    obs.learned_checked.insert(id, commit);
    Ok(())
}
