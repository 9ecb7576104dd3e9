//! How a Multi-Paxos node's durable state maps onto the Raft-shaped records that the
//! shell persists ([`HardState`], [`Entry`], [`consensus::Snapshot`]), so that the log
//! engine, the simulator's crash model and every other shell serve both engines.
//!
//! ```text
//!   acceptor state                      persisted as
//!   ─────────────────────────────────   ───────────────────────────────────────────────
//!   promised ballot p                   HardState { term: p.to_term(),
//!   slots forgotten up to f (or none)               vote: Some(f) (None if none),
//!   highest chosen prefix c                         commit: c }
//!   slot s: accepted (b, value)         Entry { index: s, term: b.to_term(),
//!                                               payload: Command(record) }
//!   slot s: nothing accepted (a hole)   Entry { index: s, term: 0, payload: Noop }
//!   chosen prefix up to i, compacted    Snapshot { meta: { index: i, term: origin of
//!                                                  the value chosen at i, … }, data }
//!
//!   record = RECORD_VERSION u8 | origin ballot u64 | payload (consensus::codec)
//! ```
//!
//! Why a record rather than the payload itself: an acceptor must remember *two* ballots
//! per slot — the one it accepted in (`Entry.term`, what phase 1 compares) and the
//! value's origin (what names the proposal to the shell, kept across re-proposals). The
//! record carries the second. Holes exist because acceptors accept slots out of order
//! under pipelining, while the shared log format is contiguous.
//!
//! Why it is crash-safe: the shell writes a ready's records in the order snapshot,
//! entries, hard state, and only then releases `messages_after_sync`. Every `Promise`
//! and `Accepted` travels there, so whatever an acceptor has promised or acknowledged is
//! on disk before anyone hears of it; a torn write can only lose what nobody was told.
//!
//! **Requirement on the shell: a ready's `entries` are persisted all or none.** Appending
//! at slot `s` replaces the stored suffix from `s` (the shared contract), so whenever an
//! acceptor raises the ballot of one slot — a new leader re-proposing a value, the most
//! common write after a takeover — the log re-emits every later slot it holds, and some
//! of those are acknowledged acceptances. A crash that kept the first rewritten entries
//! and lost the rest would forget them (the simulator found exactly this). Raft never
//! needs the guarantee, because it only truncates suffixes that cannot be committed;
//! Multi-Paxos acceptor state is a per-slot map, and no mapping onto a suffix-replacing
//! log can survive a write torn between entries. hakv's log engine provides it: one
//! append is one checksummed record, and replay drops a torn record whole. The
//! simulator models exactly that for this engine (`SimEngine::ATOMIC_ENTRIES`).
//!
//! Recovery takes the promise to be at least every ballot the disk holds an acceptance
//! in: the hard state is written after the entries, and accepting implies promising.
//!
//! *Forgotten slots.* Installing a leader's snapshot replaces the whole durable log (the
//! shared contract), dropping any held slot after it — possibly an acknowledged
//! acceptance. Before such an install the acceptor durably records how far it may have
//! forgotten (`HardState.vote`, in an earlier ready than the install), and until its own
//! chosen prefix passes that point it promises only proposers whose chosen prefix does:
//! only a proposer that does not know those slots chosen could have needed its report
//! of them, exactly as for compacted slots.

use bytes::{BufMut, Bytes};
use consensus::codec::{DecodeError, Reader};
use consensus::{Entry, HardState, LogIndex, Payload, Term};

use crate::ballot::Ballot;
use crate::message::Accepted;
use crate::wire::{get_value, put_value};

/// Version byte of an acceptance record.
pub const RECORD_VERSION: u8 = 1;

/// The persisted form of slot `slot` holding `accepted` (or nothing).
pub fn to_entry(slot: LogIndex, accepted: Option<&Accepted>) -> Entry {
    match accepted {
        None => Entry {
            term: Term(0),
            index: slot,
            payload: Payload::Noop,
        },
        Some(a) => {
            let mut record = Vec::with_capacity(16 + a.value.payload.size_bytes());
            record.put_u8(RECORD_VERSION);
            put_value(&mut record, &a.value);
            Entry {
                term: a.ballot.to_term(),
                index: slot,
                payload: Payload::Command(Bytes::from(record)),
            }
        }
    }
}

/// Reads back what [`to_entry`] wrote: `None` for a hole.
pub fn from_entry(e: &Entry) -> Result<Option<Accepted>, DecodeError> {
    let record = match &e.payload {
        Payload::Noop if e.term == Term(0) => return Ok(None),
        Payload::Command(record) => record.clone(),
        _ => return Err(DecodeError("not a Multi-Paxos acceptance record")),
    };
    let mut r = Reader::new(record);
    if r.u8()? != RECORD_VERSION {
        return Err(DecodeError("unsupported acceptance record version"));
    }
    let value = get_value(&mut r)?;
    if !r.is_empty() {
        return Err(DecodeError("trailing bytes after acceptance record"));
    }
    let ballot = Ballot::from_term(e.term);
    if value.origin > ballot {
        return Err(DecodeError("value accepted before it was proposed"));
    }
    Ok(Some(Accepted { ballot, value }))
}

/// The hard state recording promise `promised`, chosen prefix `commit` and forgotten
/// slots up to `forgotten` (0 for none).
pub fn hard_state(promised: Ballot, commit: LogIndex, forgotten: LogIndex) -> HardState {
    HardState {
        term: promised.to_term(),
        vote: (forgotten > LogIndex(0)).then_some(forgotten.0),
        commit,
    }
}

/// The promise recorded in `hs`.
pub fn promised(hs: &HardState) -> Ballot {
    Ballot::from_term(hs.term)
}

/// How far the acceptor that wrote `hs` may have forgotten acknowledged slots.
pub fn forgotten(hs: &HardState) -> LogIndex {
    LogIndex(hs.vote.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Value;
    use consensus::{ConfigChange, MemberChange};

    #[test]
    fn every_acceptance_round_trips_through_its_entry() {
        let payloads = [
            Payload::Noop,
            Payload::Command(Bytes::from_static(b"set k v")),
            Payload::Config(ConfigChange::Apply(vec![MemberChange::AddVoter(4)])),
        ];
        for payload in payloads {
            let a = Accepted {
                ballot: Ballot::new(7, 2),
                value: Value {
                    origin: Ballot::new(3, 1),
                    payload,
                },
            };
            let e = to_entry(LogIndex(9), Some(&a));
            assert_eq!(e.index, LogIndex(9));
            assert_eq!(
                e.term,
                Ballot::new(7, 2).to_term(),
                "term is the accepted ballot"
            );
            assert_eq!(from_entry(&e), Ok(Some(a)));
        }
        assert_eq!(from_entry(&to_entry(LogIndex(3), None)), Ok(None));
    }

    #[test]
    fn foreign_or_corrupt_records_are_refused() {
        let raft_entry = Entry {
            term: Term(3),
            index: LogIndex(1),
            payload: Payload::Noop,
        };
        assert!(from_entry(&raft_entry).is_err());
        let garbage = Entry {
            term: Term(3),
            index: LogIndex(1),
            payload: Payload::Command(Bytes::from_static(b"\x01\x02")),
        };
        assert!(from_entry(&garbage).is_err());
    }

    #[test]
    fn the_promise_and_the_forgotten_slots_round_trip_through_the_hard_state() {
        for (b, f) in [(Ballot::ZERO, 0), (Ballot::new(5, 3), 9)] {
            let hs = hard_state(b, LogIndex(4), LogIndex(f));
            assert_eq!(promised(&hs), b);
            assert_eq!(forgotten(&hs), LogIndex(f));
            assert_eq!(hs.commit, LogIndex(4));
        }
    }
}
