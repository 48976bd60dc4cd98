"""Seeded random layouts for the layout tests: nested shapes, and strides
either compact in a random mode order with gaps or random (zeros included)."""
from __future__ import annotations

import random

import enigma
from enigma import tuple as et


def _shape(r: random.Random, depth: int = 2):
    if depth == 0 or r.random() < 0.4:
        return r.randint(1, 6)
    return tuple(_shape(r, depth - 1) for _ in range(r.randint(1, 3)))


def _leaves(t):
    return [t] if isinstance(t, int) else [x for y in t for x in _leaves(y)]


def _leaf_paths(t, prefix=()):
    if isinstance(t, int):
        return [prefix]
    return [p for i, x in enumerate(t) for p in _leaf_paths(x, prefix + (i,))]


def _unflatten(flat, profile):
    it = iter(flat)

    def rec(p):
        return next(it) if isinstance(p, int) else tuple(rec(x) for x in p)

    return rec(profile)


def rand_layout(r: random.Random, max_size: int = 128) -> enigma.Layout:
    """Nested shapes; strides either compact in a random mode order with random
    gaps (injective, mostly complementable) or random (zeros included)."""
    while True:
        s = _shape(r)
        if et.product(s) <= max_size:
            break
    ls = _leaves(s)
    if r.random() < 0.5:
        order = list(range(len(ls)))
        r.shuffle(order)
        d, cur = [0] * len(ls), 1
        for k in order:
            cur *= r.choice((1, 1, 2))
            d[k] = cur
            cur *= ls[k]
    else:
        d = [0 if r.random() < 0.2 else r.randint(1, 24) for _ in ls]
    return enigma.Layout(s, _unflatten(d, s))
