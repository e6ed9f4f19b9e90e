"""Philox4x64-10 (Salmon et al., SC'11; Random123), the bit generator of every stream.

A stream is keyed by ``(seed, stream_id)``. Word ``i`` of substream ``s`` is
lane ``i % 4`` of the block ``philox(counter, key)`` with the 256-bit counter

    counter = (i // 4) + s * 2**64        (word 0 is the least significant)

so any word can be computed without the ones before it. ``philox_block`` is a
plain-Python statement of the algorithm, used by the tests and the docs; bulk
words come from NumPy's C implementation, which computes the same function.
"""

from __future__ import annotations

import hashlib

import numpy as np

MASK64 = (1 << 64) - 1
MULTIPLIERS = (0xD2E7470EE14C6C93, 0xCA5A826395121157)
WEYL = (0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B)
ROUNDS = 10
WORDS_PER_BLOCK = 4

#: Substream ids (counter word 1): independent sequences under one key.
SUBSTREAM_VALUES = 0
SUBSTREAM_SPARSE_MASK = 1
#: Second word of a complex element (its imaginary part, or its angle).
SUBSTREAM_COMPLEX = 2


def _mulhilo(a: int, b: int) -> tuple[int, int]:
    product = a * b
    return product >> 64, product & MASK64


def philox_block(counter: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, int, int, int]:
    """One Philox4x64-10 block.

    Each round: (hi0, lo0) = M0 * c0, (hi1, lo1) = M1 * c2, then
    c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0); the key gains the Weyl
    increments before rounds 2..10.
    """
    c0, c1, c2, c3 = (int(x) & MASK64 for x in counter)
    k0, k1 = (int(x) & MASK64 for x in key)
    for round_index in range(ROUNDS):
        if round_index:
            k0 = (k0 + WEYL[0]) & MASK64
            k1 = (k1 + WEYL[1]) & MASK64
        hi0, lo0 = _mulhilo(MULTIPLIERS[0], c0)
        hi1, lo1 = _mulhilo(MULTIPLIERS[1], c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def stream_id_from_name(name: str) -> int:
    """uint64 stream id of a tensor name: the first 8 bytes of SHA-256(UTF-8 name), little-endian."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def _counter_words(value: int) -> np.ndarray:
    value &= (1 << 256) - 1
    return np.array([(value >> (64 * lane)) & MASK64 for lane in range(4)], dtype=np.uint64)


def philox_words(key: tuple[int, int], start: int, count: int, substream: int = SUBSTREAM_VALUES) -> np.ndarray:
    """Words ``[start, start + count)`` of a substream as a uint64 array.

    NumPy's Philox increments its counter before computing a block, so it is
    started one below the first block we need.
    """
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    first_block = start // WORDS_PER_BLOCK
    skip = start - first_block * WORDS_PER_BLOCK
    n_blocks = (skip + count + WORDS_PER_BLOCK - 1) // WORDS_PER_BLOCK
    counter = first_block + (substream << 64) - 1
    generator = np.random.Philox(key=np.array(key, dtype=np.uint64), counter=_counter_words(counter))
    raw = generator.random_raw(n_blocks * WORDS_PER_BLOCK)
    return raw[skip:skip + count] if skip or raw.size != count else raw
