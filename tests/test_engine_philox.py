"""Philox4x64-10: Random123 known answers, NumPy's Philox at the documented counter/key, stream ids."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

import weightinit as wi
from weightinit.engine.philox import SUBSTREAM_SPARSE_MASK, SUBSTREAM_VALUES, philox_block, philox_words

M64 = (1 << 64) - 1

# Random123 tests/kat_vectors, "philox4x64 10" (DESIGN.md section 2).
KAT = [
    ((0, 0, 0, 0), (0, 0),
     (0x16554d9eca36314c, 0xdb20fe9d672d0fdc, 0xd7e772cee186176b, 0x7e68b68aec7ba23b)),
    ((M64, M64, M64, M64), (M64, M64),
     (0x87b092c3013fe90b, 0x438c3c67be8d0224, 0x9cc7d7c69cd777b6, 0xa09caebf594f0ba0)),
    ((0x243f6a8885a308d3, 0x13198a2e03707344, 0xa4093822299f31d0, 0x082efa98ec4e6c89),
     (0x452821e638d01377, 0xbe5466cf34e90c6c),
     (0xa528f45403e61d95, 0x38c72dbd566e9788, 0xa5a1610e72fd18b5, 0x57bd43b5e52b7fe6)),
]
KAT_IDS = ["zeros", "ones", "pi"]


def counter_int(words) -> int:
    return sum(int(w) << (64 * lane) for lane, w in enumerate(words))


def counter_words(value: int) -> np.ndarray:
    value %= 1 << 256
    return np.array([(value >> (64 * lane)) & M64 for lane in range(4)], dtype=np.uint64)


def numpy_block(counter, key) -> tuple[int, ...]:
    """One block from numpy.random.Philox, which increments its counter before computing."""
    generator = np.random.Philox(key=np.array(key, dtype=np.uint64),
                                 counter=counter_words(counter_int(counter) - 1))
    return tuple(int(w) for w in generator.random_raw(4))


def reference_words(key, start: int, count: int, substream: int = 0) -> list[int]:
    """Word i of substream s = lane i % 4 of philox(counter = (i // 4, s, 0, 0), key), block by block."""
    words, cache = [], {}
    for i in range(start, start + count):
        block = i // 4
        if block not in cache:
            cache = {block: philox_block((block & M64, substream, 0, 0), key)}
        words.append(cache[block][i % 4])
    return words


@pytest.mark.parametrize("counter,key,expected", KAT, ids=KAT_IDS)
def test_philox_block_matches_random123_known_answers(counter, key, expected):
    assert philox_block(counter, key) == expected


@pytest.mark.parametrize("counter,key,expected", KAT, ids=KAT_IDS)
def test_numpy_philox_matches_random123_known_answers(counter, key, expected):
    assert numpy_block(counter, key) == expected


def test_philox_block_is_a_function_of_all_counter_and_key_words():
    base = philox_block((1, 2, 3, 4), (5, 6))
    for lane in range(4):
        counter = [1, 2, 3, 4]
        counter[lane] ^= 1 << 63
        assert philox_block(tuple(counter), (5, 6)) != base
    assert philox_block((1, 2, 3, 4), (5 ^ 1, 6)) != base
    assert philox_block((1, 2, 3, 4), (5, 6 ^ 1)) != base


KEYS = [(0, 0), (7, wi.spec_from_dict({"scheme": "zeros", "shape": [1], "name": "fc1.weight"}).stream),
        (M64, M64), (2 ** 63 + 1, 12345)]


@pytest.mark.parametrize("key", KEYS, ids=["zero", "fc1", "max", "mixed"])
@pytest.mark.parametrize("start,count", [(0, 1), (0, 4), (0, 37), (1, 3), (2, 9), (3, 1), (5, 11), (4, 8),
                                         (1023, 70), (2 ** 40 + 3, 13), (4 * (2 ** 62) + 2, 7)])
def test_philox_words_follow_the_documented_counter_layout(key, start, count):
    expected = reference_words(key, start, count)
    got = philox_words(key, start, count)
    assert got.dtype == np.uint64 and got.shape == (count,)
    assert [int(w) for w in got] == expected


@pytest.mark.parametrize("key", KEYS[:3], ids=["zero", "fc1", "max"])
@pytest.mark.parametrize("start,count", [(0, 8), (3, 10), (1001, 6)])
def test_substream_one_is_counter_word_one(key, start, count):
    got = philox_words(key, start, count, SUBSTREAM_SPARSE_MASK)
    assert [int(w) for w in got] == reference_words(key, start, count, substream=1)
    assert SUBSTREAM_VALUES == 0 and SUBSTREAM_SPARSE_MASK == 1
    assert not np.array_equal(got, philox_words(key, start, count, SUBSTREAM_VALUES))


@pytest.mark.parametrize("key", KEYS, ids=["zero", "fc1", "max", "mixed"])
def test_raw_stream_equals_numpy_philox_started_one_block_early(key):
    """The bulk stream is NumPy's Philox with key [seed, stream] and counter -1 (mod 2**256)."""
    reference = np.random.Philox(key=np.array(key, dtype=np.uint64), counter=counter_words(-1)).random_raw(4099)
    assert np.array_equal(philox_words(key, 0, 4099), reference)
    # unaligned windows of the same stream
    for start, count in [(1, 4098), (2, 5), (3, 100), (4001, 98)]:
        assert np.array_equal(philox_words(key, start, count), reference[start:start + count])


def test_numpy_philox_random_raw_is_block_lanes_in_order():
    key = (11, 22)
    generator = np.random.Philox(key=np.array(key, dtype=np.uint64), counter=counter_words(9))
    raw = [int(w) for w in generator.random_raw(8)]
    assert raw == list(philox_block((10, 0, 0, 0), key)) + list(philox_block((11, 0, 0, 0), key))


def test_philox_words_of_nothing_is_empty():
    assert philox_words((1, 2), 5, 0).shape == (0,)


def test_tensor_element_i_consumes_word_i():
    """uniform(0, 1) in float64 is exactly (word_i >> 11) * 2**-53 of the spec's (seed, stream) key."""
    spec = wi.spec_from_dict({"scheme": "uniform", "shape": [3, 1001], "dtype": "float64", "seed": 99,
                              "name": "layer.weight"})
    words = np.random.Philox(key=np.array([99, spec.stream], dtype=np.uint64),
                             counter=counter_words(-1)).random_raw(spec.numel)
    expected = (words >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    whole = wi.generate(spec)
    assert np.array_equal(whole.reshape(-1), expected)
    assert np.array_equal(wi.generate(spec, 7, 1530), expected[7:1530])


# ---------------------------------------------------------------------------
# Stream ids from names


def documented_stream_id(name: str) -> int:
    """First 8 bytes of SHA-256 of the UTF-8 name, read as a little-endian uint64."""
    return struct.unpack("<Q", hashlib.sha256(name.encode("utf-8")).digest()[:8])[0]


NAMES = ["", "fc1.weight", "fc1.bias", "encoder.layers.11.self_attn.q_proj.weight", "层.权重", "a" * 4096,
         "conv1/kernel:0", "\x00"]


@pytest.mark.parametrize("name", NAMES, ids=range(len(NAMES)))
def test_stream_id_is_the_documented_name_hash(name):
    spec = wi.spec_from_dict({"scheme": "normal", "shape": [2], "name": name})
    assert spec.stream == documented_stream_id(name)
    assert spec.key == (0, documented_stream_id(name))


def test_known_stream_ids():
    # SHA-256("") is the well-known e3b0c442 98fc1c14 ...: its first 8 bytes, little-endian.
    empty = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert hashlib.sha256(b"").digest() == empty
    assert documented_stream_id("") == 0x141CFC9842C4B0E3
    assert wi.spec_from_dict({"scheme": "zeros", "shape": [], "name": ""}).stream == 0x141CFC9842C4B0E3


def test_explicit_stream_overrides_the_name():
    named = wi.spec_from_dict({"scheme": "normal", "shape": [64], "name": "x", "stream": 5})
    other = wi.spec_from_dict({"scheme": "normal", "shape": [64], "name": "y", "stream": 5})
    assert named.stream == other.stream == 5
    assert np.array_equal(wi.generate(named), wi.generate(other))
    by_hash = wi.spec_from_dict({"scheme": "normal", "shape": [64], "name": "z",
                                 "stream": documented_stream_id("x")})
    assert np.array_equal(wi.generate(by_hash), wi.generate({"scheme": "normal", "shape": [64], "name": "x"}))


def test_seed_is_key_word_zero_and_stream_key_word_one():
    spec = wi.spec_from_dict({"scheme": "uniform", "shape": [8], "dtype": "float64", "seed": 3, "stream": 4})
    words = np.array(reference_words((3, 4), 0, 8), dtype=np.uint64)
    assert np.array_equal(wi.generate(spec), (words >> np.uint64(11)).astype(np.float64) * 2.0 ** -53)
    swapped = wi.spec_from_dict({"scheme": "uniform", "shape": [8], "dtype": "float64", "seed": 4, "stream": 3})
    assert not np.array_equal(wi.generate(spec), wi.generate(swapped))
