//! The membership the ring places shards on: nodes with an id, a weight, an optional
//! zone and a state.
//!
//! ```text
//!   Active ──drain──▶ Draining ──(its replicas moved away)──▶ removed
//!     │                  │
//!     └──────failure─────┴──▶ Dead ──(its replicas replaced)──▶ removed
//! ```
//!
//! Only `Active` nodes receive replicas. `Draining` and `Dead` nodes stay members so that
//! the moves off them can be planned and explained (a dead node's replicas are repairs,
//! a draining node's are drains); the ring itself never looks at them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A node's cluster-wide id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Whether a node may hold replicas.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum NodeState {
    /// Serving and eligible for new replicas.
    #[default]
    Active,
    /// Still serving, but leaving: it gets no new replicas and its replicas move away.
    Draining,
    /// Declared failed: it gets no replicas and its replicas are replaced elsewhere.
    Dead,
}

impl NodeState {
    /// Whether a node in this state may be given replicas (only `Active`).
    pub fn is_eligible(self) -> bool {
        self == NodeState::Active
    }
}

/// One member: its id, its relative capacity, its failure domain and its state.
///
/// `weight` scales the node's virtual nodes (a weight-2 node owns twice the ring of a
/// weight-1 node) and must be at least 1. `zone` names a failure domain (a rack, an
/// availability zone); the ring spreads each shard's replicas over distinct zones. A node
/// without a zone is a failure domain of its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Node {
    /// The node's id; unique in a membership.
    pub id: NodeId,
    /// Relative capacity, at least 1.
    pub weight: u32,
    /// Failure domain label; `None` means a domain of its own. Never empty.
    pub zone: Option<String>,
    /// Whether it may hold replicas.
    pub state: NodeState,
}

impl Node {
    /// An active node of weight 1 with no zone.
    pub fn new(id: u64) -> Node {
        Node {
            id: NodeId(id),
            weight: 1,
            zone: None,
            state: NodeState::Active,
        }
    }

    /// This node with weight `weight`.
    pub fn with_weight(mut self, weight: u32) -> Node {
        self.weight = weight;
        self
    }

    /// This node in zone `zone`.
    pub fn with_zone(mut self, zone: impl Into<String>) -> Node {
        self.zone = Some(zone.into());
        self
    }

    /// This node in state `state`.
    pub fn with_state(mut self, state: NodeState) -> Node {
        self.state = state;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        if self.weight == 0 {
            return Err(Error::ZeroWeight(self.id));
        }
        if self.zone.as_deref() == Some("") {
            return Err(Error::EmptyZone(self.id));
        }
        Ok(())
    }
}

/// A validated set of nodes.
///
/// Invariants (checked on construction, on every change and on deserialization): ids
/// are unique, weights are at least 1, zone labels are non-empty. Nodes are kept sorted
/// by id, so two memberships with the same nodes are equal — and place shards
/// identically — whatever order the nodes were given in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<Node>", into = "Vec<Node>")]
pub struct Members {
    /// Sorted by id, ids unique.
    nodes: Vec<Node>,
}

impl TryFrom<Vec<Node>> for Members {
    type Error = Error;
    fn try_from(nodes: Vec<Node>) -> Result<Members, Error> {
        Members::new(nodes)
    }
}

impl From<Members> for Vec<Node> {
    fn from(members: Members) -> Vec<Node> {
        members.nodes
    }
}

impl Members {
    /// A membership of `nodes`, or the first problem found: a duplicate id, a zero
    /// weight, an empty zone label. An empty membership is valid (placing shards on it is
    /// not).
    pub fn new(nodes: impl IntoIterator<Item = Node>) -> Result<Members, Error> {
        let mut nodes: Vec<Node> = nodes.into_iter().collect();
        for node in &nodes {
            node.validate()?;
        }
        nodes.sort_by_key(|n| n.id);
        if let Some(pair) = nodes.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(Error::DuplicateNode(pair[0].id));
        }
        Ok(Members { nodes })
    }

    /// The node with id `id`.
    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.index_of(id).ok().map(|i| &self.nodes[i])
    }

    /// Every node, in id order.
    pub fn iter(&self) -> std::slice::Iter<'_, Node> {
        self.nodes.iter()
    }

    /// The nodes that may receive replicas (the `Active` ones), in id order.
    pub fn eligible(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.state.is_eligible())
    }

    /// The number of nodes, whatever their state.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes at all.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds `node`, or replaces the member with its id (a weight, zone or state change).
    /// Refuses an invalid node and leaves the membership unchanged.
    pub fn upsert(&mut self, node: Node) -> Result<(), Error> {
        node.validate()?;
        match self.index_of(node.id) {
            Ok(i) => self.nodes[i] = node,
            Err(i) => self.nodes.insert(i, node),
        }
        Ok(())
    }

    /// Removes the node with id `id` and returns it, if it was a member.
    pub fn remove(&mut self, id: NodeId) -> Option<Node> {
        self.index_of(id).ok().map(|i| self.nodes.remove(i))
    }

    /// Sets the state of member `id`.
    pub fn set_state(&mut self, id: NodeId, state: NodeState) -> Result<(), Error> {
        let i = self.index_of(id).map_err(|_| Error::UnknownNode(id))?;
        self.nodes[i].state = state;
        Ok(())
    }

    fn index_of(&self, id: NodeId) -> Result<usize, usize> {
        self.nodes.binary_search_by_key(&id, |n| n.id)
    }
}
