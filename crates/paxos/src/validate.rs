//! Structural checks on messages from the network, before any state changes. A peer
//! that fails them is buggy or hostile; the message is refused with a reason and changes
//! nothing.

use consensus::{NodeId, StepError};

use crate::ballot::Ballot;
use crate::message::{Body, Message, Value};

/// No legitimate slot, ballot or commit index comes near this (2^62 slots at a billion
/// a second is 146 years); refusing larger values keeps every `+ 1` in the core
/// overflow-free.
pub(crate) const VALUE_MAX: u64 = 1 << 62;

fn bad<T>(why: String) -> Result<T, StepError> {
    Err(StepError::Malformed(why))
}

fn small(what: &str, v: u64) -> Result<(), StepError> {
    if v >= VALUE_MAX {
        bad(format!("{what} {v} is impossibly large"))
    } else {
        Ok(())
    }
}

fn value_ok(v: &Value, accepted_in: Ballot) -> Result<(), StepError> {
    if v.origin > accepted_in {
        return bad(format!(
            "value of origin {} accepted or proposed in earlier ballot {accepted_in}",
            v.origin
        ));
    }
    Ok(())
}

/// Checks `msg` from `from` to node `me`: numbers in range, ballots owned by whoever
/// the message says owns them, slots in order, values no newer than their ballots.
pub(crate) fn validate(me: NodeId, from: NodeId, msg: &Message) -> Result<(), StepError> {
    small("ballot", msg.ballot.to_term().0)?;
    let proposer_sent = matches!(
        msg.body,
        Body::PrePrepare { .. }
            | Body::Prepare { .. }
            | Body::Accept { .. }
            | Body::Heartbeat { .. }
            | Body::InstallSnapshot { .. }
            | Body::TimeoutNow
    );
    // A proposer only ever uses its own ballots; an acceptor answers the recipient's.
    let owner = if proposer_sent { from } else { me };
    if msg.ballot.node != owner || msg.ballot == Ballot::ZERO {
        return bad(format!(
            "{} carries ballot {} owned by node {} (expected {owner})",
            msg.body.kind(),
            msg.ballot,
            msg.ballot.node
        ));
    }
    match &msg.body {
        Body::Prepare { commit, .. } | Body::PrePrepare { commit } => small("commit", commit.0)?,
        Body::Promise { commit, accepted } => {
            small("commit", commit.0)?;
            small("report count", accepted.len() as u64)?;
            let mut prev = 0;
            for r in accepted {
                small("slot", r.slot.0)?;
                if r.slot.0 <= prev {
                    return bad(format!("promise reports slot {} out of order", r.slot));
                }
                prev = r.slot.0;
                if r.accepted.ballot > msg.ballot {
                    return bad(format!(
                        "promise for {} reports an acceptance in later ballot {}",
                        msg.ballot, r.accepted.ballot
                    ));
                }
                small("ballot", r.accepted.ballot.to_term().0)?;
                value_ok(&r.accepted.value, r.accepted.ballot)?;
            }
        }
        Body::Accept {
            first,
            values,
            commit,
        } => {
            small("first slot", first.0)?;
            small("commit", commit.0)?;
            small("value count", values.len() as u64)?;
            if first.0 == 0 {
                return bad("slot 0 does not exist".into());
            }
            if first.0 + values.len() as u64 >= VALUE_MAX {
                return bad("slot overflow".into());
            }
            for v in values {
                value_ok(v, msg.ballot)?;
            }
        }
        Body::Accepted {
            last,
            through,
            commit,
        } => {
            small("last", last.0)?;
            small("through", through.0)?;
            small("commit", commit.0)?;
        }
        Body::Nack { promised } => small("promised", promised.to_term().0)?,
        Body::Heartbeat { commit, .. } => small("commit", commit.0)?,
        Body::HeartbeatAck {
            through, commit, ..
        } => {
            small("through", through.0)?;
            small("commit", commit.0)?;
        }
        Body::InstallSnapshot {
            meta,
            total_bytes,
            offset,
            chunk,
            commit,
        } => {
            small("snapshot index", meta.index.0)?;
            small("commit", commit.0)?;
            if meta.index.0 == 0 || meta.index > *commit {
                return bad(format!(
                    "snapshot at {} beyond the leader's commit {commit}",
                    meta.index
                ));
            }
            if Ballot::from_term(meta.term) > msg.ballot {
                return bad(format!("snapshot value from later ballot {}", meta.term.0));
            }
            if offset
                .checked_add(chunk.len() as u64)
                .is_none_or(|end| end > *total_bytes)
            {
                return bad(format!(
                    "chunk at {offset} of {} bytes overruns {total_bytes}",
                    chunk.len()
                ));
            }
            if meta.membership.voters.is_empty() || meta.membership.is_joint() {
                return bad("snapshot membership without voters, or joint".into());
            }
        }
        Body::SnapshotAck { index, .. } => small("index", index.0)?,
        Body::TimeoutNow | Body::PrePrepareAck { .. } => {}
    }
    Ok(())
}
