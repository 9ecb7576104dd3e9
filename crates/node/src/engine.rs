//! What the replica runtime needs from a replication engine beyond the
//! [`consensus::Engine`] contract: how to boot it from durable state, how its messages
//! travel on the wire, and cheap read-only views the runtime consults on every batch.
//!
//! The runtime is generic over this trait so that Raft and Multi-Paxos run the same
//! store, the same log engine, the same transport and the same tests.

use bytes::Bytes;
use consensus::{Engine, LogIndex, NodeId, Recovered, Role, Snapshot, Term};

/// A replication engine the node runtime can drive.
pub trait ReplicaEngine: Engine + Send + Sized + 'static {
    /// The engine's tuning (includes this node's id).
    type Config: Clone + std::fmt::Debug + Send + 'static;
    /// Short name, for logs, INFO and `/status` ("raft", "paxos").
    const NAME: &'static str;
    /// Mixes `salt` (the group id) into the engine's random seed, so that the groups
    /// of one node draw different election timeouts.
    fn salt_seed(cfg: &mut Self::Config, salt: u64);
    /// Rebuilds the engine from what the log engine recovered; `Err` says why the
    /// durable state is unusable.
    fn boot(cfg: Self::Config, recovered: Recovered) -> Result<Self, String>;
    /// The durable state of a founding member of a group of `voters`.
    fn bootstrap(voters: &[NodeId]) -> Recovered;
    /// Appends the wire form of `msg` to `out`.
    fn encode_message(msg: &Self::Message, out: &mut Vec<u8>);
    /// Decodes a message from a peer; never panics on hostile bytes.
    fn decode_message(bytes: Bytes) -> Result<Self::Message, String>;
    /// The current role.
    fn role(&self) -> Role;
    /// The current term (Raft) or ballot round (Paxos).
    fn term(&self) -> Term;
    /// The leader this node believes in, if any.
    fn leader(&self) -> Option<NodeId>;
    /// The index the latest snapshot covers (0 if none).
    fn snapshot_index(&self) -> LogIndex;
    /// The latest snapshot, if any.
    fn snapshot(&self) -> Option<&Snapshot>;
}

impl ReplicaEngine for raft::Raft {
    type Config = raft::Config;
    const NAME: &'static str = "raft";

    fn salt_seed(cfg: &mut raft::Config, salt: u64) {
        cfg.seed ^= salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn boot(cfg: raft::Config, recovered: Recovered) -> Result<Self, String> {
        raft::Raft::new(cfg, recovered)
    }

    fn bootstrap(voters: &[NodeId]) -> Recovered {
        raft::Raft::bootstrap(voters)
    }

    fn encode_message(msg: &raft::Message, out: &mut Vec<u8>) {
        raft::wire::encode(msg, out)
    }

    fn decode_message(bytes: Bytes) -> Result<raft::Message, String> {
        raft::wire::decode(bytes).map_err(|e| e.to_string())
    }

    fn role(&self) -> Role {
        raft::Raft::role(self)
    }

    fn term(&self) -> Term {
        raft::Raft::term(self)
    }

    fn leader(&self) -> Option<NodeId> {
        raft::Raft::leader(self)
    }

    fn snapshot_index(&self) -> LogIndex {
        raft::Raft::snapshot_index(self)
    }

    fn snapshot(&self) -> Option<&Snapshot> {
        raft::Raft::snapshot(self)
    }
}

impl ReplicaEngine for paxos::Paxos {
    type Config = paxos::Config;
    const NAME: &'static str = "paxos";

    fn salt_seed(cfg: &mut paxos::Config, salt: u64) {
        cfg.seed ^= salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn boot(cfg: paxos::Config, recovered: Recovered) -> Result<Self, String> {
        paxos::Paxos::new(cfg, recovered)
    }

    fn bootstrap(voters: &[NodeId]) -> Recovered {
        paxos::Paxos::bootstrap(voters)
    }

    fn encode_message(msg: &paxos::Message, out: &mut Vec<u8>) {
        paxos::wire::encode(msg, out)
    }

    fn decode_message(bytes: Bytes) -> Result<paxos::Message, String> {
        paxos::wire::decode(bytes).map_err(|e| e.to_string())
    }

    fn role(&self) -> Role {
        paxos::Paxos::role(self)
    }

    fn term(&self) -> Term {
        paxos::Paxos::term(self)
    }

    fn leader(&self) -> Option<NodeId> {
        paxos::Paxos::leader(self)
    }

    fn snapshot_index(&self) -> LogIndex {
        paxos::Paxos::snapshot_index(self)
    }

    fn snapshot(&self) -> Option<&Snapshot> {
        paxos::Paxos::snapshot(self)
    }
}
