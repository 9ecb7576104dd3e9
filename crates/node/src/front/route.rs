//! Keys to shards to replicas: which replication group answers a request, and how
//! multi-key and keyspace-wide commands are split across shards and merged back.
//!
//! A request names keys; [`Routing::shard_of`] maps each to its shard (hash tags
//! respected), and a shard is the replication group `shard + 1` held by the nodes of
//! its replica set. A command on one shard runs where that shard's leader is; a
//! command on many shards runs as one sub-command per shard, concurrently, and the
//! replies are merged in the client's order:
//!
//! | command            | split into                  | merged as              |
//! |--------------------|-----------------------------|------------------------|
//! | MGET k…            | MGET of each shard's keys   | values in request order|
//! | MSET k v…          | MSET of each shard's pairs  | OK if every part is OK |
//! | DEL/UNLINK/EXISTS  | the same, per shard         | sum of the counts      |
//! | DBSIZE, KEYS p     | the same, on every shard    | sum / concatenation    |
//! | SCAN c …           | SCAN on one shard at a time | cursor names the shard |
//!
//! **What a cross-shard MSET guarantees** (until cross-shard transactions exist): each
//! shard's part is atomic and durable once acknowledged, but the parts are independent
//! — a reader may see one shard's new values before another's, and if a part fails the
//! others may still have taken effect (the client gets the error). Keys that share a
//! hash tag (`{user1}.a`, `{user1}.b`) are on one shard, so MSET on them is atomic.
//!
//! **The SCAN cursor** is `shard << (64 − b) | pos`, where `b` bits hold a shard number
//! and `pos` is the top `64 − b` bits of the shard's own cursor (a key hash). Resuming
//! at `pos << b` can only repeat keys already seen (SCAN allows repeats), never skip
//! one. With one shard the cursor is exactly the store's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use consensus::NodeId;
use resp::Frame;
use ring::{Keyspace, ShardMap};

use crate::replica::Replica;

/// The replication group that holds `shard`.
pub fn group_of(shard: u32) -> u64 {
    u64::from(shard) + 1
}

/// The shard number that names the meta group (cluster metadata) in routing and
/// forwarding; it is never a key's shard.
pub const META_SHARD: u32 = u32::MAX;
/// The meta group's replication group id.
pub const META_GROUP: u64 = u32::MAX as u64 + 1;

/// Where each shard lives, which of them this node holds, and the last leader heard
/// of for each. Placement and the local replicas change as the cluster heals or
/// grows; requests read them under a short read lock.
pub struct Routing {
    keyspace: Keyspace,
    replicas: RwLock<Vec<Vec<NodeId>>>,
    local: RwLock<HashMap<u32, Arc<Replica>>>,
    /// The leader last learned for each shard (0: unknown), from redirects; local
    /// shards use their replica's own hint. The last slot is the meta group's.
    hints: Vec<AtomicU64>,
    meta_replicas: RwLock<Vec<NodeId>>,
}

impl Routing {
    /// Routing over `map`, with `local` the replicas this node holds, by shard (the
    /// meta group's under [`META_SHARD`]), and the meta group on `meta_replicas`.
    pub fn new(
        map: &ShardMap,
        local: HashMap<u32, Arc<Replica>>,
        meta_replicas: Vec<NodeId>,
    ) -> Routing {
        let replicas: Vec<Vec<NodeId>> = map
            .iter()
            .map(|(_, r)| r.iter().map(|n| n.0).collect())
            .collect();
        let hints = (0..=replicas.len()).map(|_| AtomicU64::new(0)).collect();
        Routing {
            keyspace: *map.keyspace(),
            replicas: RwLock::new(replicas),
            local: RwLock::new(local),
            hints,
            meta_replicas: RwLock::new(meta_replicas),
        }
    }

    /// One shard held here by `replica`, replicated on `voters`.
    pub fn single(replica: Arc<Replica>, voters: Vec<NodeId>) -> Routing {
        let keyspace = Keyspace::new(1, ring::HashTags::Redis).expect("one shard is valid");
        let local = HashMap::from([(0, replica)]);
        Routing {
            keyspace,
            replicas: RwLock::new(vec![voters]),
            local: RwLock::new(local),
            hints: vec![AtomicU64::new(0), AtomicU64::new(0)],
            meta_replicas: RwLock::new(Vec::new()),
        }
    }

    /// How many shards the keyspace has.
    pub fn shards(&self) -> u32 {
        self.keyspace.shards()
    }

    /// The shard of `key`.
    pub fn shard_of(&self, key: &[u8]) -> u32 {
        if self.keyspace.shards() == 1 {
            return 0;
        }
        self.keyspace.shard_of(key).0
    }

    /// The replica of `shard` held by this node, if any.
    pub fn local(&self, shard: u32) -> Option<Arc<Replica>> {
        self.local
            .read()
            .expect("not poisoned")
            .get(&shard)
            .cloned()
    }

    /// Every shard this node holds (the meta group included), with its replica.
    pub fn locals(&self) -> Vec<(u32, Arc<Replica>)> {
        let mut v: Vec<(u32, Arc<Replica>)> = self
            .local
            .read()
            .expect("not poisoned")
            .iter()
            .map(|(s, r)| (*s, r.clone()))
            .collect();
        v.sort_by_key(|(s, _)| *s);
        v
    }

    /// Records that this node now holds (`Some`) or no longer holds `shard`.
    pub fn set_local(&self, shard: u32, replica: Option<Arc<Replica>>) {
        let mut local = self.local.write().expect("not poisoned");
        match replica {
            Some(r) => local.insert(shard, r),
            None => local.remove(&shard),
        };
    }

    /// The nodes holding `shard`.
    pub fn replicas(&self, shard: u32) -> Vec<NodeId> {
        if shard == META_SHARD {
            return self.meta_replicas.read().expect("not poisoned").clone();
        }
        self.replicas
            .read()
            .expect("not poisoned")
            .get(shard as usize)
            .cloned()
            .unwrap_or_default()
    }

    /// Records a new replica set for `shard` (from the meta group).
    pub fn set_replicas(&self, shard: u32, nodes: Vec<NodeId>) {
        if shard == META_SHARD {
            *self.meta_replicas.write().expect("not poisoned") = nodes;
            return;
        }
        if let Some(r) = self
            .replicas
            .write()
            .expect("not poisoned")
            .get_mut(shard as usize)
        {
            *r = nodes;
        }
    }

    /// Every node that holds some replica as far as this node knows, in id order: where
    /// to look for a group whose own replicas are all out of reach (after a restart,
    /// the meta group may have moved away from the founders this node remembers).
    pub fn known_nodes(&self) -> Vec<NodeId> {
        let mut all: Vec<NodeId> = self
            .replicas
            .read()
            .expect("not poisoned")
            .iter()
            .flatten()
            .copied()
            .chain(self.replicas(META_SHARD))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    fn hint(&self, shard: u32) -> Option<&AtomicU64> {
        if shard == META_SHARD {
            self.hints.last()
        } else {
            self.hints.get(shard as usize)
        }
    }

    /// The node most likely to lead `shard`: the local replica's belief, else the last
    /// redirect heard, else the first replica.
    pub fn leader_guess(&self, shard: u32) -> Option<NodeId> {
        if let Some(l) = self.local(shard).and_then(|r| r.leader_hint()) {
            return Some(l);
        }
        match self.hint(shard).map(|h| h.load(Ordering::Relaxed)) {
            Some(0) | None => self.replicas(shard).first().copied(),
            Some(l) => Some(l),
        }
    }

    /// Remembers that `leader` leads `shard` (from a redirect; 0 forgets).
    pub fn learn_leader(&self, shard: u32, leader: NodeId) {
        if let Some(h) = self.hint(shard) {
            h.store(leader, Ordering::Relaxed);
        }
    }

    /// Bits of a SCAN cursor that hold the shard number.
    fn shard_bits(&self) -> u32 {
        let s = self.keyspace.shards();
        if s <= 1 {
            0
        } else {
            32 - (s - 1).leading_zeros()
        }
    }

    /// Splits a client cursor into (shard, that shard's cursor); `None` if it names a
    /// shard that does not exist.
    pub fn decode_cursor(&self, cursor: u64) -> Option<(u32, u64)> {
        let b = self.shard_bits();
        if b == 0 {
            return Some((0, cursor));
        }
        let shard = (cursor >> (64 - b)) as u32;
        let pos = cursor & (u64::MAX >> b);
        (shard < self.shards()).then_some((shard, pos << b))
    }

    /// The client cursor after a shard step that returned `next` on `shard` (0: that
    /// shard is done).
    pub fn encode_cursor(&self, shard: u32, next: u64) -> u64 {
        let b = self.shard_bits();
        if b == 0 {
            return next;
        }
        if next == 0 {
            return if shard + 1 < self.shards() {
                u64::from(shard + 1) << (64 - b)
            } else {
                0
            };
        }
        // A position of 0 would read as "start of the shard" (and, on shard 0, as a
        // finished scan); 1 resumes at hash 2^b, skipping only hashes below 2^b that
        // the store's cursor already passed or that no real key has.
        let pos = (next >> b).max(1);
        (u64::from(shard) << (64 - b)) | pos
    }
}

/// How a command touches shards.
pub(crate) enum Split {
    /// One shard does it all.
    One(u32),
    /// One sub-command per shard; merged by `merge`. `parts[i]` = (shard, args,
    /// positions of the request's keys it carries).
    Many {
        parts: Vec<(u32, Vec<Bytes>, Vec<usize>)>,
        merge: Merge,
        keys: usize,
    },
    /// A SCAN step on one shard: its args with the shard-local cursor.
    Scan(u32, Vec<Bytes>),
}

/// How to merge sub-replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Merge {
    /// Values back in request order.
    Values,
    /// OK if every part is OK.
    AllOk,
    /// Sum of integer replies.
    Sum,
    /// Concatenation of arrays.
    Concat,
}

/// Decides how `args` (`name` lowercased) spreads over shards. Commands that are not
/// multi-key go to the shard of their first argument (or shard 0 without one).
pub(crate) fn split(routing: &Routing, name: &str, args: &[Bytes]) -> Result<Split, Frame> {
    let a = &args[1..];
    let single = |routing: &Routing| Split::One(a.first().map_or(0, |k| routing.shard_of(k)));
    if routing.shards() == 1 {
        return Ok(match (name, a.len()) {
            ("scan", n) if n >= 1 => Split::Scan(0, args.to_vec()),
            _ => Split::One(0),
        });
    }
    let (stride, merge) = match (name, a.len()) {
        ("mget", n) if n >= 1 => (1, Merge::Values),
        ("mset", n) if n >= 2 && n % 2 == 0 => (2, Merge::AllOk),
        ("del" | "unlink" | "exists", n) if n >= 1 => (1, Merge::Sum),
        ("dbsize", 0) => return Ok(everywhere(routing, args, Merge::Sum)),
        ("keys", 1) => return Ok(everywhere(routing, args, Merge::Concat)),
        ("scan", n) if n >= 1 => return scan(routing, args),
        _ => return Ok(single(routing)),
    };
    let mut by_shard: Vec<(u32, Vec<Bytes>, Vec<usize>)> = Vec::new();
    for (i, chunk) in a.chunks(stride).enumerate() {
        let shard = routing.shard_of(&chunk[0]);
        let part = match by_shard.iter_mut().position(|p| p.0 == shard) {
            Some(p) => &mut by_shard[p],
            None => {
                by_shard.push((shard, vec![args[0].clone()], Vec::new()));
                by_shard.last_mut().expect("just pushed")
            }
        };
        part.1.extend(chunk.iter().cloned());
        part.2.push(i);
    }
    if by_shard.len() == 1 {
        return Ok(Split::One(by_shard[0].0));
    }
    Ok(Split::Many {
        parts: by_shard,
        merge,
        keys: a.len() / stride,
    })
}

fn everywhere(routing: &Routing, args: &[Bytes], merge: Merge) -> Split {
    Split::Many {
        parts: (0..routing.shards())
            .map(|s| (s, args.to_vec(), Vec::new()))
            .collect(),
        merge,
        keys: 0,
    }
}

fn scan(routing: &Routing, args: &[Bytes]) -> Result<Split, Frame> {
    let cursor = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| super::data::err("ERR invalid cursor"))?;
    let (shard, local) = routing
        .decode_cursor(cursor)
        .ok_or_else(|| super::data::err("ERR invalid cursor"))?;
    let mut sub = args.to_vec();
    sub[1] = Bytes::from(local.to_string());
    Ok(Split::Scan(shard, sub))
}

/// Merges sub-replies (in `parts` order) into the client's reply; the first error
/// wins.
pub(crate) fn merge(merge: Merge, keys: usize, parts: Vec<(Vec<usize>, Frame)>) -> Frame {
    if let Some((_, e)) = parts.iter().find(|(_, f)| matches!(f, Frame::Error(_))) {
        return e.clone();
    }
    match merge {
        Merge::Values => {
            let mut out = vec![Frame::Null; keys];
            for (positions, frame) in parts {
                let Frame::Array(values) = frame else {
                    return unexpected(&frame);
                };
                if values.len() != positions.len() {
                    return unexpected(&Frame::Array(values));
                }
                for (p, v) in positions.into_iter().zip(values) {
                    out[p] = v;
                }
            }
            Frame::Array(out)
        }
        Merge::AllOk => match parts.into_iter().find(|(_, f)| !is_ok(f)) {
            None => super::data::ok(),
            Some((_, f)) => unexpected(&f),
        },
        Merge::Sum => {
            let mut sum = 0i64;
            for (_, f) in parts {
                match f {
                    Frame::Integer(n) => sum += n,
                    other => return unexpected(&other),
                }
            }
            Frame::Integer(sum)
        }
        Merge::Concat => {
            let mut out = Vec::new();
            for (_, f) in parts {
                match f {
                    Frame::Array(items) => out.extend(items),
                    other => return unexpected(&other),
                }
            }
            Frame::Array(out)
        }
    }
}

/// Rewrites a shard's SCAN reply so its cursor names the shard.
pub(crate) fn scan_reply(routing: &Routing, shard: u32, reply: Frame) -> Frame {
    match reply {
        Frame::Array(mut items) if items.len() == 2 => {
            let next = match &items[0] {
                Frame::Bulk(b) => std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok()),
                _ => None,
            };
            match next {
                Some(n) => {
                    items[0] =
                        Frame::Bulk(Bytes::from(routing.encode_cursor(shard, n).to_string()));
                    Frame::Array(items)
                }
                None => unexpected(&Frame::Array(items)),
            }
        }
        other => other,
    }
}

fn is_ok(f: &Frame) -> bool {
    matches!(f, Frame::SimpleString(s) if &s[..] == b"OK")
}

fn unexpected(f: &Frame) -> Frame {
    super::data::err(format!("ERR internal: unexpected shard reply {f:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::{HashTags, Members, Node, Placement};

    fn routing(shards: u32) -> Routing {
        let ks = Keyspace::new(shards, HashTags::Redis).unwrap();
        let placement = Placement::new(ks, 3, 64).unwrap();
        let members = Members::new((1..=3).map(Node::new)).unwrap();
        Routing::new(
            &placement.compute(&members).unwrap(),
            HashMap::new(),
            vec![1, 2, 3],
        )
    }

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    #[test]
    fn a_scan_cursor_round_trips_through_every_shard_and_ends_at_zero() {
        for shards in [1, 2, 3, 16, 1000] {
            let r = routing(shards);
            for shard in 0..shards {
                for next in [1u64 << 40, u64::MAX, 12345 << 30] {
                    let c = r.encode_cursor(shard, next);
                    let (s, local) = r.decode_cursor(c).unwrap();
                    assert_eq!(s, shard);
                    assert!(local <= next, "resuming must never skip: {local} > {next}");
                    assert!(next - local < 1 << 20);
                }
                let after = r.encode_cursor(shard, 0);
                if shard + 1 == shards {
                    assert_eq!(after, 0, "the last shard's end ends the scan");
                } else {
                    assert_eq!(r.decode_cursor(after), Some((shard + 1, 0)));
                }
            }
            assert_eq!(r.decode_cursor(0), Some((0, 0)));
        }
        // Cursors naming a shard beyond the keyspace are refused.
        assert_eq!(routing(3).decode_cursor(u64::MAX), None);
    }

    #[test]
    fn multi_key_commands_split_by_shard_and_merge_in_request_order() {
        let r = routing(16);
        let keys: Vec<String> = (0..40).map(|i| format!("key:{i}")).collect();
        let mut args = vec![b("MGET")];
        args.extend(keys.iter().map(|k| b(k)));
        let Ok(Split::Many {
            parts,
            merge: m,
            keys: n,
        }) = split(&r, "mget", &args)
        else {
            panic!("40 keys over 16 shards span many shards");
        };
        assert_eq!(n, 40);
        // Each part holds only its shard's keys; together they hold each key once.
        let mut seen = [false; 40];
        let replies = parts
            .iter()
            .map(|(shard, sub, positions)| {
                for (k, p) in sub[1..].iter().zip(positions) {
                    assert_eq!(r.shard_of(k), *shard);
                    assert!(!std::mem::replace(&mut seen[*p], true));
                }
                // Each shard answers with the key names, as if they were the values.
                (
                    positions.clone(),
                    Frame::Array(sub[1..].iter().cloned().map(Frame::Bulk).collect()),
                )
            })
            .collect();
        assert!(seen.iter().all(|s| *s));
        let Frame::Array(merged) = merge(m, n, replies) else {
            panic!()
        };
        let expect: Vec<Frame> = keys.iter().map(|k| Frame::Bulk(b(k))).collect();
        assert_eq!(merged, expect);
    }

    #[test]
    fn keys_sharing_a_hash_tag_stay_on_one_shard() {
        let r = routing(64);
        let args = vec![b("MSET"), b("{u1}.a"), b("1"), b("{u1}.b"), b("2")];
        assert!(matches!(split(&r, "mset", &args), Ok(Split::One(_))));
    }

    #[test]
    fn the_first_error_of_any_part_is_the_reply() {
        let e = super::super::data::err("ERR boom");
        let parts = vec![(vec![], Frame::Integer(1)), (vec![], e.clone())];
        assert_eq!(merge(Merge::Sum, 0, parts), e);
        let parts = vec![(vec![], Frame::Integer(2)), (vec![], Frame::Integer(3))];
        assert_eq!(merge(Merge::Sum, 0, parts), Frame::Integer(5));
    }
}
