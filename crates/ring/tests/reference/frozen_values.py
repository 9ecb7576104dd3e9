#!/usr/bin/env python3
"""An independent re-implementation of the ring's documented rules, written from the
documentation rather than the Rust code, that prints the frozen values asserted in
src/hash.rs, tests/keyspace.rs and tests/placement.rs. Run: python3 frozen_values.py

It follows the rules as stated, with different algorithms where the Rust code is
clever: the whole preference list is walked and sorted (the Rust walk stops early), and
water-filling finds its level by interpolating between breakpoints with exact fractions
(the Rust code binary-searches and divides by the free weight)."""

from fractions import Fraction
from math import ceil

MASK = (1 << 64) - 1
C = Fraction(9, 8)  # a node's cap is ceil(C * fair share)


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


def water_fill(total, vessels):
    """vessels: [(weight, lo, hi)]. Returns the amounts clamp(mu * weight, lo, hi) that sum
    to total, for the mu where that sum (continuous, non-decreasing) reaches total."""
    def f(mu):
        return sum(min(max(mu * w, lo), hi) for w, lo, hi in vessels)

    points = sorted({Fraction(b, w) for w, lo, hi in vessels for b in (lo, hi)})
    mu = points[-1]
    for a, b in zip(points, points[1:]):
        if f(a) <= total <= f(b):
            mu = a if f(b) == f(a) else a + (total - f(a)) * (b - a) / (f(b) - f(a))
            break
    amounts = [min(max(mu * w, lo), hi) for w, lo, hi in vessels]
    assert sum(amounts) == total
    return amounts


def quotas(nodes, shards, replicas):
    """nodes: [(id, zone or None, weight)], all active. Returns {id: (fair, replicas_max,
    leaders_max)}: zones take [min(size, l - 1) * S, min(size, l) * S] replicas, where l
    is the least level with sum(min(size, l)) >= R, split by weight; then nodes within a
    zone by weight, at most S each. replicas_max = min(S, max(ceil(C * fair),
    ceil(fair) + 1)); leaders_max = ceil(C * fair / R)."""
    domain = {i: (z if z is not None else ("own", i)) for i, z, _ in nodes}
    zones = sorted(set(domain.values()), key=repr)
    members = {z: [(i, w) for i, _, w in nodes if domain[i] == z] for z in zones}
    level = 1
    while sum(min(len(members[z]), level) for z in zones) < replicas:
        level += 1
    zone_totals = water_fill(
        replicas * shards,
        [
            (sum(w for _, w in members[z]),
             min(len(members[z]), level - 1) * shards,
             min(len(members[z]), level) * shards)
            for z in zones
        ],
    )
    out = {}
    for z, total in zip(zones, zone_totals):
        shares = water_fill(total, [(w, 0, shards) for _, w in members[z]])
        for (i, _), share in zip(members[z], shares):
            replicas_max = min(shards, max(ceil(C * share), ceil(share) + 1))
            out[i] = (share, replicas_max, ceil(C * share / replicas))
    return out


def placing_order(shards):
    """Shard ids sorted by their bit-reversed value (k bits, k = bits of shards - 1)."""
    k = (shards - 1).bit_length()
    return sorted(range(shards), key=lambda s: int(format(s, f"0{k}b")[::-1] or "0", 2))


def place(nodes, shards, replicas, vnodes):
    """nodes: [(id, zone or None, weight)], all active. Returns one list per shard,
    preferred leader first."""
    points = sorted((vnode_position(i, k), i) for i, _, w in nodes for k in range(w * vnodes))
    domain = {i: (z if z is not None else ("own", i)) for i, z, _ in nodes}
    caps = quotas(nodes, shards, replicas)
    held = {i: 0 for i, _, _ in nodes}
    led = {i: 0 for i, _, _ in nodes}
    result = [None] * shards
    for shard in placing_order(shards):
        pos = shard_position(shard, shards)
        start = next((j for j, (p, _) in enumerate(points) if p >= pos), 0)
        walk = []
        for j in range(len(points)):
            node = points[(start + j) % len(points)][1]
            if node not in walk:
                walk.append(node)
        full = {n: held[n] >= caps[n][1] for n in walk}
        # Within a zone: nodes with room first, then full ones, each in walk order.
        rank = {}
        for z in set(domain.values()):
            in_zone = [n for n in walk if domain[n] == z]
            ordered = [n for n in in_zone if not full[n]] + [n for n in in_zone if full[n]]
            for r, n in enumerate(ordered, 1):
                rank[n] = r
        chosen = sorted(walk, key=lambda n: (rank[n], full[n], walk.index(n)))[:replicas]
        chosen.sort(key=walk.index)
        leader = next((n for n in chosen if led[n] < caps[n][2]), chosen[0])
        chosen = [leader] + [n for n in chosen if n != leader]
        led[leader] += 1
        for n in chosen:
            held[n] += 1
        result[shard] = chosen
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
    q = quotas(cluster, shards=64, replicas=3)
    print("quotas (fair, replicas_max, leaders_max):", {i: (str(f), r, l) for i, (f, r, l) in q.items()})
    # The cap's floor: 21 shards, 1 replica, on 23 and 24 nodes (cap 2 both times).
    for n in (23, 24):
        print(f"21 shards x 1 on {n} nodes: cap", quotas([(i, None, 1) for i in range(1, n + 1)], 21, 1)[1][1])
    # The product's default shape: 16 shards x 3 replicas, 256 vnodes, nodes 1..5 then 6.
    for n in (5, 6):
        m = place([(i, None, 1) for i in range(1, n + 1)], shards=16, replicas=3, vnodes=256)
        loads = [sum(i in s for s in m) for i in range(1, n + 1)]
        leads = [sum(s[0] == i for s in m) for i in range(1, n + 1)]
        print(f"16 shards on nodes 1..{n}: replicas {loads}, leaders {leads}")
