#!/usr/bin/env python3
"""An independent re-implementation of the ring's documented rules, written from the
documentation rather than the Rust code, that prints the frozen values asserted in
src/hash.rs, tests/keyspace.rs and tests/placement.rs. Run: python3 frozen_values.py"""

MASK = (1 << 64) - 1


def key_hash(data: bytes) -> int:
    """kv::key_hash: FNV-1a 64 over the bytes, then the SplitMix64 finalizer."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & MASK
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & MASK
    return h ^ (h >> 31)


def vnode_position(node: int, index: int) -> int:
    return key_hash(node.to_bytes(8, "little") + index.to_bytes(4, "little"))


def shard_of_hash(h: int, shards: int) -> int:
    return (h * shards) >> 64


def shard_position(shard: int, shards: int) -> int:
    return -(-(shard << 64) // shards)  # ceil(shard * 2^64 / shards)


def place(nodes, shards, replicas, vnodes):
    """nodes: [(id, zone or None, weight)], all active. Returns one list per shard."""
    points = sorted((vnode_position(i, k), i) for i, _, w in nodes for k in range(w * vnodes))
    domain = {i: (z if z is not None else ("own", i)) for i, z, _ in nodes}
    result = []
    for shard in range(shards):
        pos = shard_position(shard, shards)
        start = next((j for j, (p, _) in enumerate(points) if p >= pos), 0)
        walk = []
        for j in range(len(points)):
            node = points[(start + j) % len(points)][1]
            if node not in walk:
                walk.append(node)
        met, keyed = {}, []
        for order, node in enumerate(walk):
            met[domain[node]] = met.get(domain[node], 0) + 1
            keyed.append((met[domain[node]], order, node))
        chosen = sorted(keyed)[:replicas]
        result.append([node for _, _, node in sorted(chosen, key=lambda c: c[1])])
    return result


if __name__ == "__main__":
    for node, index in [(0, 0), (1, 0), (1, 1), (MASK, 0xFFFFFFFF)]:
        print(f"vnode_position({node}, {index}) = {vnode_position(node, index):#018x}")
    # "{hello}.world" routes by its hash tag, "hello".
    for key, routed in [(b"", b""), (b"hello", b"hello"), (b"{hello}.world", b"hello")]:
        print(f"shard_of({key!r}) in 4096 = {shard_of_hash(key_hash(routed), 4096)}")
    cluster = [(1, "a", 1), (2, "a", 2), (3, "b", 1), (4, "b", 1), (5, "c", 1), (6, "c", 1)]
    m = place(cluster, shards=64, replicas=3, vnodes=16)
    print("shard 0:", m[0], "shard 1:", m[1], "shard 63:", m[63])
    print(f"fingerprint = {key_hash(bytes(n for s in m for n in s)):#018x}")
