//! Structural checks on messages from the network, before any state changes. A peer
//! that fails them is buggy or hostile; the message is refused with a reason.

use consensus::StepError;

use crate::message::{Body, Message};

pub(crate) fn validate(msg: &Message) -> Result<(), StepError> {
    let bad = |s: String| Err(StepError::Malformed(s));
    match &msg.body {
        Body::Append {
            prev_index,
            prev_term,
            entries,
            ..
        } => {
            if *prev_term > msg.term {
                return bad(format!("prev_term {} above message term {}", prev_term, msg.term));
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
                return bad(format!("snapshot at {} term {} is impossible", meta.index, meta.term));
            }
            if offset.checked_add(chunk.len() as u64).is_none_or(|end| end > *total_bytes) {
                return bad(format!("chunk at {offset} of {} bytes overruns {total_bytes}", chunk.len()));
            }
            if meta.membership.voters.is_empty() {
                return bad("snapshot without voters".into());
            }
        }
        Body::AppendResponse { index, .. } if index.0 == u64::MAX => {
            return bad("index overflow".into());
        }
        _ => {}
    }
    Ok(())
}
