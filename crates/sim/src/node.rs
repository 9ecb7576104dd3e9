//! The simulated shell around one engine: a disk that keeps only what was synced, the
//! key-value state machine, and the bookkeeping that turns applied entries and read
//! states into client replies. It mirrors what the real node runtime does, so the
//! engine is exercised exactly as in production.

use std::collections::BTreeMap;

use bytes::Bytes;
use consensus::{Entry, HardState, LogIndex, NodeId, Ready, Recovered, Snapshot, Term};
use kv::KvStore;

use crate::harness::SimEngine;

/// What survives a crash: written in the order snapshot, entries, hard state, like one
/// write-ahead log, so a crash mid-write keeps a prefix of that order.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    /// Durable hard state.
    pub hard_state: HardState,
    /// Durable snapshot.
    pub snapshot: Option<Snapshot>,
    /// Durable entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

impl Disk {
    /// Appends entries, first dropping any stored suffix they replace.
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        self.entries.retain(|e| e.index < first.index);
        self.entries.extend_from_slice(entries);
    }

    /// Installs a snapshot received from the leader: the log restarts after it.
    pub fn install(&mut self, snapshot: Snapshot) {
        self.entries.clear();
        self.snapshot = Some(snapshot);
    }

    /// Records a snapshot the node took itself and drops the entries it covers.
    pub fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        self.entries.retain(|e| e.index > index);
        self.snapshot = Some(snapshot);
    }

    /// What a restarting node recovers.
    pub fn recover(&self) -> Recovered {
        Recovered {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
}

/// A client operation waiting on this node.
#[derive(Clone, Debug)]
pub struct Waiter {
    /// Index of the client.
    pub client: usize,
    /// The client's operation number.
    pub op: u64,
}

/// One simulated node.
pub struct SimNode<E: SimEngine> {
    /// Its id.
    pub id: NodeId,
    /// The running engine; `None` while crashed.
    pub engine: Option<E>,
    /// Bumped on every crash, so events of a previous life are ignored.
    pub incarnation: u64,
    /// What survives crashes.
    pub disk: Disk,
    /// The state machine.
    pub kv: KvStore,
    /// Highest index applied to `kv`.
    pub applied: LogIndex,
    /// A ready whose writes are "in flight" to the disk.
    pub io: Option<Ready<E::Message>>,
    /// Microseconds per tick on this node (skewed).
    pub tick_us: u64,
    /// Proposals accepted here, by index: (term, waiter).
    pub proposals: BTreeMap<LogIndex, (Term, Waiter)>,
    /// Reads requested here by ctx: (waiter, key).
    pub reads: BTreeMap<u64, (Waiter, Bytes)>,
    /// Reads whose index is known, waiting for `applied` to reach it.
    pub confirmed_reads: Vec<(LogIndex, Waiter, Bytes)>,
    /// Removed from the group for good (stopped by the operator).
    pub retired: bool,
}

impl<E: SimEngine> SimNode<E> {
    /// A node that has not started yet.
    pub fn new(id: NodeId, disk: Disk, tick_us: u64) -> Self {
        SimNode {
            id,
            engine: None,
            incarnation: 0,
            disk,
            kv: KvStore::new(),
            applied: LogIndex(0),
            io: None,
            tick_us,
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            confirmed_reads: Vec::new(),
            retired: false,
        }
    }

    /// True while running.
    pub fn is_up(&self) -> bool {
        self.engine.is_some()
    }

    /// Restores the state machine from the durable snapshot, as a restarting process does.
    pub fn restore_state_machine(&mut self) {
        match &self.disk.snapshot {
            Some(s) => {
                self.kv = KvStore::restore(s.data.clone()).expect("own snapshot decodes");
                self.applied = s.meta.index;
            }
            None => {
                self.kv = KvStore::new();
                self.applied = LogIndex(0);
            }
        }
    }

    /// Every waiter on this node, removed (the node crashed or retired).
    pub fn drain_waiters(&mut self) -> Vec<Waiter> {
        let mut out: Vec<Waiter> = std::mem::take(&mut self.proposals)
            .into_values()
            .map(|(_, w)| w)
            .collect();
        out.extend(
            std::mem::take(&mut self.reads)
                .into_values()
                .map(|(w, _)| w),
        );
        out.extend(
            std::mem::take(&mut self.confirmed_reads)
                .into_iter()
                .map(|(_, w, _)| w),
        );
        out
    }
}
