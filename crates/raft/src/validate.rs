//! Structural checks on messages from the network, before any state changes. A peer
//! that fails them is buggy or hostile; the message is refused with a reason.

use consensus::StepError;

use crate::message::{Body, Message};

/// No legitimate term or index comes near this (2^62 entries at a billion a second is
/// 146 years); refusing larger values keeps every `+ 1` in the core overflow-free.
pub(crate) const VALUE_MAX: u64 = 1 << 62;

fn impossible(what: &str, v: u64) -> Result<(), StepError> {
    if v >= VALUE_MAX {
        Err(StepError::Malformed(format!(
            "{what} {v} is impossibly large"
        )))
    } else {
        Ok(())
    }
}

pub(crate) fn validate(msg: &Message) -> Result<(), StepError> {
    let bad = |s: String| Err(StepError::Malformed(s));
    impossible("term", msg.term.0)?;
    match &msg.body {
        Body::PreVote {
            last_index,
            last_term,
        }
        | Body::Vote {
            last_index,
            last_term,
            ..
        } => {
            impossible("last index", last_index.0)?;
            impossible("last term", last_term.0)?;
        }
        Body::Append {
            prev_index,
            commit,
            entries,
            ..
        } => {
            impossible("prev index", prev_index.0)?;
            impossible("commit", commit.0)?;
            impossible("entry count", entries.len() as u64)?;
        }
        Body::AppendResponse {
            index,
            hint_index,
            hint_term,
            ..
        } => {
            impossible("index", index.0)?;
            impossible("hint index", hint_index.0)?;
            impossible("hint term", hint_term.0)?;
        }
        Body::Heartbeat { commit, .. } => impossible("commit", commit.0)?,
        Body::InstallSnapshot { meta, .. } => impossible("snapshot index", meta.index.0)?,
        Body::SnapshotResponse { index, .. } | Body::ReadIndexResponse { index, .. } => {
            impossible("index", index.0)?
        }
        _ => {}
    }
    match &msg.body {
        Body::Append {
            prev_index,
            prev_term,
            entries,
            ..
        } => {
            if *prev_term > msg.term {
                return bad(format!(
                    "prev_term {} above message term {}",
                    prev_term, msg.term
                ));
            }
            let mut expect = prev_index.next();
            let mut last_term = *prev_term;
            for e in entries {
                if e.index != expect {
                    return bad(format!("entry index {} where {} expected", e.index, expect));
                }
                if e.term < last_term || e.term > msg.term {
                    return bad(format!("entry term {} out of order at {}", e.term, e.index));
                }
                expect = expect.next();
                last_term = e.term;
            }
            if prev_index.0.checked_add(entries.len() as u64 + 1).is_none() {
                return bad("index overflow".into());
            }
        }
        Body::InstallSnapshot {
            meta,
            total_bytes,
            offset,
            chunk,
        } => {
            if meta.index.0 == 0 || meta.term > msg.term {
                return bad(format!(
                    "snapshot at {} term {} is impossible",
                    meta.index, meta.term
                ));
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
            if meta.membership.voters.is_empty() {
                return bad("snapshot without voters".into());
            }
        }
        _ => {}
    }
    Ok(())
}
