"""The JIT CPU backend: the NumPy reference's exact bits, compiled with Numba.

Every step repeats ``weightinit.engine.transforms`` operation for operation:
the same IEEE-754 binary64 ``+ - * /`` and ``sqrt`` in the same order, the same
Horner nesting, the same frexp-based log reduction, the same clamp, the same
float64 -> float32 -> float16 / bfloat16 rounding. Numba is used without
fastmath, so LLVM neither reassociates nor contracts ``a * b + c`` into a fused
multiply-add; the tests compare the bytes against the NumPy backend.

What differs is only how the work is scheduled:

- Philox4x64-10 is computed here too, a chunk at a time into a small buffer
  that stays in L1. With AVX-512DQ, 8 blocks run in vector lanes (high
  products from 32-bit halves) beside 2 by the scalar 64x64 -> 128-bit
  product, which works while the vector units do; elsewhere pairs of blocks by
  the 128-bit product alone. Either gives the words of ``numpy.random.Philox``;
- words become uniforms through their bits (exact, see ``_open_uniform``),
  and the loops are written so that LLVM vectorises them: the uniform map, the
  central region of the inverse normal CDF over every element (noting which
  are tail elements), the tail (log, sqrt, near-tail ratio) over a list of
  the ~15% tail elements (built by register compress with AVX-512), the
  rounding to the storage dtype (float16 by the CPU's F16C conversion where it
  exists); only the far tail (r > 5, p < 1.4e-11) is scalar;
- every loop writes through a slice starting at 0 (``out[pos:pos + m]``), so
  no index can be negative and LLVM stores contiguously instead of scattering;
- ``random_into`` cuts a range into parts that the calling thread and the
  shared pool's threads take from one queue; the compiled functions release
  the GIL, so the parts run in parallel.

Compiled code is cached on disk (``cache=True``); each kernel kind is compiled
on first use per output dtype (about 2 s each without a cache, milliseconds
with one).
"""

from __future__ import annotations

import logging
import math
import threading

import numpy as np
from llvmlite import binding, ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ..engine import transforms as T
from ..engine.philox import MULTIPLIERS, SUBSTREAM_VALUES, WEYL
from .base import BLOCK_ELEMENTS, Backend, cpu_threads, shared_pool, storage_dtype

log = logging.getLogger(__name__)


def _kernel_jit(fn):
    """nogil (the shared pool runs blocks in parallel), IEEE division (error_model='numpy': no
    zero check, so loops vectorise), no fastmath, cached on disk where Numba finds a writable
    cache directory (else compiled once per process)."""
    try:
        return njit(nogil=True, cache=True, error_model="numpy")(fn)
    except RuntimeError as why:  # no writable cache location
        log.info("numba backend: no disk cache for %s: %s", fn.__name__, why)
        return njit(nogil=True, cache=False, error_model="numpy")(fn)

# ---------------------------------------------------------------------------
# The compile target: some loops are written one way or another by what the CPU has
# (the bytes are the same either way; the tests compile both for an AVX2-only CPU too).


def _target_features() -> list[str]:
    """The CPU features Numba compiles for, as it picks them ("+avx512dq", ...)."""
    from numba.core import config

    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else binding.get_host_cpu_features().flatten()
    return features.split(",")


#: AVX-512DQ: Philox in 8 vector lanes (64-bit products), tail lists by register compress.
WIDE_VECTORS = "+avx512dq" in _target_features()
#: F16C: float32 -> float16 is one CPU instruction; else an integer rounding.
HALF_BY_CPU = "+f16c" in _target_features()
#: llvm.experimental.vector.compress exists from LLVM 19 on.
VECTOR_COMPRESS = WIDE_VECTORS and binding.llvm_version_info >= (19,)


# ---------------------------------------------------------------------------
# Bit-level helpers (LLVM intrinsics: one instruction each, vectorisable).


@intrinsic
def _mulhilo64(typingctx, a, b):
    """(high, low) 64-bit halves of the 128-bit product a * b."""
    if a != types.uint64 or b != types.uint64:
        return None
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        wide = ir.IntType(128)
        product = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        high = builder.trunc(builder.lshr(product, ir.Constant(wide, 64)), ir.IntType(64))
        low = builder.trunc(product, ir.IntType(64))
        return context.make_tuple(builder, signature.return_type, (high, low))

    return sig, codegen


@intrinsic
def _f64_bits(typingctx, x):
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(types.float64), codegen


@intrinsic
def _bits_f64(typingctx, u):
    if u != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.uint64), codegen


@intrinsic
def _f32_bits(typingctx, x):
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


_I64X8 = ir.VectorType(ir.IntType(64), 8)


@intrinsic
def _compress8(typingctx, flags, i, words, where, tail_words, count):
    """For the k indices i + j (j < 8) with flags[i + j] != 0, in order: where[count:count + k] = the
    indices, tail_words[count:count + k] = words at them; returns count + k.

    Register compresses (vpcompressq) and full 8-lane stores at ``count`` (the compress-to-memory
    form is slow on AMD Zen 4), so the caller keeps count + 8 within ``where`` and ``tail_words``.
    """
    u64_array = types.Array(types.uint64, 1, "C")
    if flags != types.Array(types.uint8, 1, "C") or words != u64_array or tail_words != u64_array \
            or where != types.Array(types.int64, 1, "C"):
        return None
    sig = types.int64(flags, types.int64, words, where, tail_words, types.int64)

    def codegen(context, builder, signature, args):
        def data(position):
            return context.make_array(signature.args[position])(context, builder, args[position]).data

        def lanes_at(pointer, offset, vector_type):
            return builder.bitcast(builder.gep(pointer, [offset]), vector_type.as_pointer())

        first, count = args[1], args[5]
        bytes8 = ir.VectorType(ir.IntType(8), 8)
        flag_bytes = builder.load(lanes_at(data(0), first, bytes8), align=1)
        mask = builder.icmp_unsigned("!=", flag_bytes, ir.Constant(bytes8, [0] * 8))
        compress = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_I64X8, [_I64X8, mask.type, _I64X8]),
            "llvm.experimental.vector.compress.v8i64")
        index = builder.insert_element(ir.Constant(_I64X8, ir.Undefined), first, ir.Constant(ir.IntType(32), 0))
        index = builder.shuffle_vector(index, ir.Constant(_I64X8, ir.Undefined),
                                       ir.Constant(ir.VectorType(ir.IntType(32), 8), [0] * 8))
        index = builder.add(index, ir.Constant(_I64X8, list(range(8))))
        for vector, target in ((index, data(3)), (builder.load(lanes_at(data(2), first, _I64X8), align=8), data(4))):
            packed = builder.call(compress, [vector, mask, ir.Constant(_I64X8, ir.Undefined)])
            builder.store(packed, lanes_at(target, count, _I64X8), align=8)
        taken = builder.zext(builder.ctpop(builder.bitcast(mask, ir.IntType(8))), ir.IntType(64))
        return builder.add(count, taken)

    return sig, codegen


# ---------------------------------------------------------------------------
# Philox4x64-10: words [start, start + count) of a substream into buf[:count].

_M0 = np.uint64(MULTIPLIERS[0])
_M1 = np.uint64(MULTIPLIERS[1])
_W0 = np.uint64(WEYL[0])
_W1 = np.uint64(WEYL[1])
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U3 = np.uint64(3)
_U4 = np.uint64(4)
_U5 = np.uint64(5)
_U6 = np.uint64(6)
_U7 = np.uint64(7)
_U8 = np.uint64(8)
_U9 = np.uint64(9)


@njit(inline="always")
def _philox_block(c0, c1, k0, k1):
    """One block for counter (c0, c1, 0, 0): the rounds of ``philox.philox_block``."""
    c2 = _U0
    c3 = _U0
    for r in range(10):
        if r:
            k0 = k0 + _W0
            k1 = k1 + _W1
        hi0, lo0 = _mulhilo64(_M0, c0)
        hi1, lo1 = _mulhilo64(_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


@njit(inline="always")
def _philox_pair(a0, b0, c1, k0, k1):
    """Blocks for counters (a0, c1) and (b0, c1), interleaved so both multipliers stay busy."""
    a1 = c1
    b1 = c1
    a2 = _U0
    a3 = _U0
    b2 = _U0
    b3 = _U0
    for r in range(10):
        if r:
            k0 = k0 + _W0
            k1 = k1 + _W1
        ha0, la0 = _mulhilo64(_M0, a0)
        ha1, la1 = _mulhilo64(_M1, a2)
        hb0, lb0 = _mulhilo64(_M0, b0)
        hb1, lb1 = _mulhilo64(_M1, b2)
        a0, a1, a2, a3 = ha1 ^ a1 ^ k0, la1, ha0 ^ a3 ^ k1, la0
        b0, b1, b2, b3 = hb1 ^ b1 ^ k0, lb1, hb0 ^ b3 ^ k1, lb0
    return a0, a1, a2, a3, b0, b1, b2, b3


# The same rounds for 8 blocks at a time, in vector lanes. AVX-512 has a 64-bit low product
# (vpmullq) but no high one, so the high half is put together from four 32 x 32 -> 64-bit
# products (vpmuludq); where AVX-512DQ is missing the scalar pair loop above is faster.

_LOW32 = np.uint64(0xFFFFFFFF)
_SH32 = np.uint64(32)
_M0_LOW, _M0_HIGH = np.uint64(MULTIPLIERS[0] & 0xFFFFFFFF), np.uint64(MULTIPLIERS[0] >> 32)
_M1_LOW, _M1_HIGH = np.uint64(MULTIPLIERS[1] & 0xFFFFFFFF), np.uint64(MULTIPLIERS[1] >> 32)


@njit(inline="always")
def _mulhi_by_halves(x, m_low, m_high):
    """High 64 bits of x * m from 32-bit halves: no partial sum below overflows 64 bits."""
    x_low = x & _LOW32
    x_high = x >> _SH32
    low_low = x_low * m_low
    middle = x_low * m_high + (low_low >> _SH32)
    other = x_high * m_low + (middle & _LOW32)
    return x_high * m_high + (middle >> _SH32) + (other >> _SH32)


@njit(inline="always")
def _round_by_halves(c0, c1, c2, c3, k0, k1):
    """One Philox round with the high products by halves and the low ones as plain products."""
    return (_mulhi_by_halves(c2, _M1_LOW, _M1_HIGH) ^ c1 ^ k0, c2 * _M1,
            _mulhi_by_halves(c0, _M0_LOW, _M0_HIGH) ^ c3 ^ k1, c0 * _M0)


@njit(inline="always")
def _philox_lanes(k0, k1, c1, block, nblocks, words):
    """Blocks ``[block, block + nblocks)`` into ``words[:4 * nblocks]``: the loop over blocks
    vectorises (the round keys k + r * Weyl are loop constants)."""
    for b in range(nblocks):
        c0, c1_, c2, c3 = block + np.uint64(b), c1, _U0, _U0
        c0, c1_, c2, c3 = _round_by_halves(c0, c1_, c2, c3, k0, k1)
        c0, c1_, c2, c3 = _round_by_halves(c0, c1_, c2, c3, k0 + _W0, k1 + _W1)
        c0, c1_, c2, c3 = _round_by_halves(c0, c1_, c2, c3, k0 + _W0 * _U2, k1 + _W1 * _U2)
        c0, c1_, c2, c3 = _round_by_halves(c0, c1_, c2, c3, k0 + _W0 * _U3, k1 + _W1 * _U3)
        c0, c1_, c2, c3 = _round_by_halves(c0, c1_, c2, c3, k0 + _W0 * _U4, k1 + _W1 * _U4)
        c0, c1_, c2, c3 = _round_by_halves(c0, c1_, c2, c3, k0 + _W0 * _U5, k1 + _W1 * _U5)
        c0, c1_, c2, c3 = _round_by_halves(c0, c1_, c2, c3, k0 + _W0 * _U6, k1 + _W1 * _U6)
        c0, c1_, c2, c3 = _round_by_halves(c0, c1_, c2, c3, k0 + _W0 * _U7, k1 + _W1 * _U7)
        c0, c1_, c2, c3 = _round_by_halves(c0, c1_, c2, c3, k0 + _W0 * _U8, k1 + _W1 * _U8)
        c0, c1_, c2, c3 = _round_by_halves(c0, c1_, c2, c3, k0 + _W0 * _U9, k1 + _W1 * _U9)
        words[4 * b] = c0
        words[4 * b + 1] = c1_
        words[4 * b + 2] = c2
        words[4 * b + 3] = c3


@njit(inline="always")
def _philox_pair_into(k0, k1, c1, block, words, at):
    """Blocks ``block`` and ``block + 1`` into ``words[at:at + 8]`` by 128-bit products."""
    a0, a1, a2, a3, b0, b1, b2, b3 = _philox_pair(block, block + _U1, c1, k0, k1)
    words[at] = a0
    words[at + 1] = a1
    words[at + 2] = a2
    words[at + 3] = a3
    words[at + 4] = b0
    words[at + 5] = b1
    words[at + 6] = b2
    words[at + 7] = b3


#: Blocks per step of ``_philox_wide``: 8 in vector lanes, 2 by the scalar multiplier.
_WIDE_STEP = 10


@njit(inline="always")
def _philox_wide(k0, k1, c1, block, nblocks, buf, pos):
    """Blocks ``[block, block + nblocks)`` of substream ``c1`` into ``buf[pos:pos + 4 * nblocks]``.

    Each step computes 8 blocks in vector lanes and 2 by scalar 128-bit products in one loop
    body, so the integer multiplier works while the vector units do (the lanes alone keep the
    vector units full: measured 1.2x the words per second on AMD Zen 4); the rest in lanes.
    """
    words = buf[pos:pos + 4 * nblocks]  # indices from 0: no negative-index wraparound to check
    done = 0
    while done + _WIDE_STEP <= nblocks:
        step = words[4 * done:4 * (done + _WIDE_STEP)]
        _philox_lanes(k0, k1, c1, block + np.uint64(done), 8, step)
        _philox_pair_into(k0, k1, c1, block + np.uint64(done + 8), step, 32)
        done += _WIDE_STEP
    _philox_lanes(k0, k1, c1, block + np.uint64(done), nblocks - done, words[4 * done:])


@njit(inline="always")
def _philox_paired(k0, k1, c1, block, nblocks, buf, pos):
    """As ``_philox_wide``, two blocks at a time with one 64 x 64 -> 128-bit product each."""
    end = pos + 4 * nblocks
    while pos + 8 <= end:
        _philox_pair_into(k0, k1, c1, block, buf, pos)
        pos += 8
        block = block + _U2
    if pos < end:
        w0, w1, w2, w3 = _philox_block(block, c1, k0, k1)
        buf[pos] = w0
        buf[pos + 1] = w1
        buf[pos + 2] = w2
        buf[pos + 3] = w3


@_kernel_jit
def philox_blocks_wide(k0, k1, c1, block, nblocks, buf, pos):
    """``_philox_wide`` on its own (for the tests: ``philox_into`` inlines the one it uses)."""
    _philox_wide(k0, k1, c1, block, nblocks, buf, pos)


@_kernel_jit
def philox_blocks_paired(k0, k1, c1, block, nblocks, buf, pos):
    """``_philox_paired`` on its own (for the tests: ``philox_into`` inlines the one it uses)."""
    _philox_paired(k0, k1, c1, block, nblocks, buf, pos)


_philox_blocks = _philox_wide if WIDE_VECTORS else _philox_paired


@_kernel_jit
def philox_into(k0, k1, c1, start, count, buf):
    """Words ``[start, start + count)`` of substream ``c1`` under key (k0, k1) into ``buf[:count]``.

    Word i is lane i % 4 of the block for counter (i // 4, c1, 0, 0), as
    ``weightinit.engine.philox.philox_words``.
    """
    block = np.uint64(start >> 2)
    lane = start & 3
    pos = 0
    if lane and count > 0:
        w0, w1, w2, w3 = _philox_block(block, c1, k0, k1)
        if lane == 1:
            buf[0] = w1
            pos = 1
            if count > 1:
                buf[1] = w2
                pos = 2
            if count > 2:
                buf[2] = w3
                pos = 3
        elif lane == 2:
            buf[0] = w2
            pos = 1
            if count > 1:
                buf[1] = w3
                pos = 2
        else:
            buf[0] = w3
            pos = 1
        block = block + _U1
    whole = (count - pos) >> 2
    if whole > 0:
        _philox_blocks(k0, k1, c1, block, whole, buf, pos)
        pos += 4 * whole
        block = block + np.uint64(whole)
    if pos < count:
        w0, w1, w2, w3 = _philox_block(block, c1, k0, k1)
        buf[pos] = w0
        if pos + 1 < count:
            buf[pos + 1] = w1
        if pos + 2 < count:
            buf[pos + 2] = w2


# ---------------------------------------------------------------------------
# Words -> uniforms -> normals: transforms.py, one element at a time.

_TWO_POW_M53 = T.TWO_POW_M53
_SH11 = np.uint64(11)
_SH12 = np.uint64(12)
_SH52 = np.uint64(52)
_EXP_MASK = np.uint64(0x7FF)
_KEEP_SIGN_MANTISSA = np.uint64(0x800FFFFFFFFFFFFF)
_HALF_EXPONENT = np.uint64(0x3FE0000000000000)
_TWO_POW_54 = 2.0 ** 54


# Words become doubles through their bits rather than an int64 -> float64 conversion (which AVX2
# lacks, and which keeps LLVM from vectorising the loops): for k < 2**52 the double with bits
# ONE | k is 1 + k * 2**-52, so subtracting 1 gives k * 2**-52 exactly (Sterbenz), and adding
# 2**-53 (or 0) stays exact because the sum has at most 53 significant bits. The values are
# those of transforms.uniform01 / open_uniform exactly.
_ONE_BITS = np.uint64(0x3FF0000000000000)
_BIT11 = np.uint64(1 << 11)


@njit(inline="always")
def _uniform01(w):
    """(w >> 11) * 2**-53 = (w >> 12) * 2**-52 + bit11(w) * 2**-53."""
    low = _TWO_POW_M53 if (w & _BIT11) else 0.0
    return (_bits_f64(_ONE_BITS | (w >> _SH12)) - 1.0) + low


@njit(inline="always")
def _open_uniform(w):
    """(2 * (w >> 12) + 1) * 2**-53 = (w >> 12) * 2**-52 + 2**-53."""
    return (_bits_f64(_ONE_BITS | (w >> _SH12)) - 1.0) + _TWO_POW_M53


@njit(inline="always")
def _open_q(w):
    """open_uniform(w) - 1/2 as (1 + k * 2**-52 - 3/2) + 2**-53, k = w >> 12: every step is exact,
    (k - 2**51) * 2**-52 and then (2k + 1 - 2**52) * 2**-53, an odd integer below 2**52 times
    2**-53, as is open_uniform(w) - 1/2 itself, so the two are the same double."""
    return (_bits_f64(_ONE_BITS | (w >> _SH12)) - 1.5) + _TWO_POW_M53


@njit(inline="always")
def _frexp(x):
    """np.frexp(x) for any binary64: (m, k) with x = m * 2**k, |m| in [1/2, 1); (x, 0) for 0, inf, nan.

    Written with selects only, so it vectorises; subnormals are first scaled by 2**54 (exact).
    """
    subnormal = ((_f64_bits(x) >> _SH52) & _EXP_MASK) == _U0
    bits = _f64_bits(x * _TWO_POW_54 if subnormal else x)
    biased = np.int64((bits >> _SH52) & _EXP_MASK)
    special = x == 0.0 or biased == 0x7FF
    m = _bits_f64((bits & _KEEP_SIGN_MANTISSA) | _HALF_EXPONENT)
    k = biased - (1022 + 54 if subnormal else 1022)
    return (x if special else m), (0 if special else k)


@njit(inline="always")
def _log_positive(x):
    """transforms.log_positive for one value."""
    m, k = _frexp(x)
    if m < T.SQRT_HALF:
        m = m * 2.0
        k = k - 1
    dk = np.float64(k)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (T.LG2 + w * (T.LG4 + w * T.LG6))
    t2 = z * (T.LG1 + w * (T.LG3 + w * (T.LG5 + w * T.LG7)))
    r = t2 + t1
    hfsq = 0.5 * f * f
    return dk * T.LN2_HI - ((hfsq - (s * (hfsq + r) + dk * T.LN2_LO)) - f)


@njit(inline="always")
def _horner8(c, x):
    """transforms._horner for 8 coefficients: c[0] + x*(c[1] + ... + x*c[7]), innermost first."""
    acc = c[7]
    acc = acc * x + c[6]
    acc = acc * x + c[5]
    acc = acc * x + c[4]
    acc = acc * x + c[3]
    acc = acc * x + c[2]
    acc = acc * x + c[1]
    acc = acc * x + c[0]
    return acc


_PPND_A = T.PPND_A
_PPND_B = T.PPND_B
_PPND_C = T.PPND_C
_PPND_D = T.PPND_D
_PPND_E = T.PPND_E
_PPND_F = T.PPND_F


@njit(inline="always")
def _ndtri_central(q):
    """ndtri for |q| <= 0.425, q = p - 1/2."""
    r = T.PPND_CONST1 - q * q
    return q * (_horner8(_PPND_A, r) / _horner8(_PPND_B, r))


@njit(inline="always")
def _tail_r(p, q):
    """r = sqrt(-log(min(p, 1 - p))) of the tail formula (|q| > 0.425)."""
    return math.sqrt(-_log_positive(p if q < 0.0 else 1.0 - p))


@njit(inline="always")
def _tail_near(r):
    """C(r - 1.6) / D(r - 1.6), used where r <= 5."""
    r = r - T.PPND_CONST2
    return _horner8(_PPND_C, r) / _horner8(_PPND_D, r)


@njit(inline="always")
def _tail_far(r):
    """E(r - 5) / F(r - 5), used where r > 5 (p below about 1.4e-11)."""
    r = r - T.PPND_SPLIT2
    return _horner8(_PPND_E, r) / _horner8(_PPND_F, r)


@njit(inline="always")
def _ndtri_tail(p, q):
    """ndtri for |q| > 0.425, one element."""
    r = _tail_r(p, q)
    z = _tail_near(r) if r <= T.PPND_SPLIT2 else _tail_far(r)
    return -z if q < 0.0 else z


@njit(inline="always")
def _ndtri(p):
    """transforms.ndtri for one value (the kernels below split it into vectorisable passes)."""
    q = p - 0.5
    return _ndtri_central(q) if abs(q) <= T.PPND_SPLIT1 else _ndtri_tail(p, q)


@njit(inline="always")
def _clamp(x, lo, hi):
    """np.minimum(np.maximum(x, lo), hi): on a tie (+-0) the bound is returned, NaN propagates."""
    x = x if (x > lo or x != x) else lo
    return x if (x < hi or x != x) else hi


# ---------------------------------------------------------------------------
# float64 -> storage: ``out``'s dtype picks the rounding at compile time.
# float16 bits travel in a uint16 array, bfloat16 bits in an int16 view.

_U16 = np.uint64(16)


@njit
def _float32_to_float16_bits(single):
    """Round float32 to float16 bits, nearest even, subnormals kept, overflow to inf (as NumPy).

    Every case is computed and one selected by masks, so the store loops vectorise: normal
    range: rebias the exponent, round 13 bits off; subnormal range: restore the implicit bit,
    round 14..24 bits off (shifts of 25+ give 0; clamped to 31); at or above 65520: inf;
    inf/nan: exponent 31 and the top payload bits (a nan stays a nan). A plain @njit function
    (LLVM inlines it): Numba's own inline='always' turned these selects into branches.
    """
    b = np.uint64(_f32_bits(single))
    sign = (b >> _U16) & np.uint64(0x8000)
    a = b & np.uint64(0x7FFFFFFF)
    r = a - np.uint64(0x38000000)
    normal = (r + np.uint64(0x0FFF) + ((r >> np.uint64(13)) & _U1)) >> np.uint64(13)
    shift = np.uint64(min(max(np.int64(126) - np.int64(a >> np.uint64(23)), np.int64(1)), np.int64(31)))
    m = (a & np.uint64(0x007FFFFF)) | np.uint64(0x00800000)
    subnormal = (m + ((_U1 << (shift - _U1)) - _U1) + ((m >> shift) & _U1)) >> shift
    payload = np.uint64(0x7C00) | ((a & np.uint64(0x007FFFFF)) >> np.uint64(13))
    nan_or_inf = payload | (np.uint64(payload == np.uint64(0x7C00)) & np.uint64(a != np.uint64(0x7F800000)))
    use = _U0 - np.uint64(a < np.uint64(0x38800000))
    h = (subnormal & use) | (normal & ~use)
    use = _U0 - np.uint64(a >= np.uint64(0x477FF000))
    h = (np.uint64(0x7C00) & use) | (h & ~use)
    use = _U0 - np.uint64(a >= np.uint64(0x7F800000))
    h = (nan_or_inf & use) | (h & ~use)
    return sign | h


@intrinsic
def _float32_to_float16_bits_by_cpu(typingctx, single):
    """The CPU's own float32 -> float16 conversion (x86 F16C vcvtps2ph, eight or sixteen per
    instruction): IEEE round to nearest even, which is NumPy's rounding for every value; a NaN
    stays a quiet NaN with the top payload bits, as NumPy keeps it (the only NaNs reaching it,
    from arithmetic and float64 -> float32, are quiet)."""
    if single != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.uint16(types.float32), codegen


@njit(inline="always")
def _float32_to_bfloat16_bits(single):
    """(b + 0x7FFF + ((b >> 16) & 1)) >> 16 in 64-bit arithmetic, as transforms.float32_to_bfloat16_bits."""
    b = np.uint64(_f32_bits(single))
    return (b + np.uint64(0x7FFF) + ((b >> _U16) & _U1)) >> _U16


def _store(out, i, x):  # pragma: no cover - replaced by the overload inside compiled code
    """out[i] = x rounded to out's dtype."""
    raise NotImplementedError


@overload(_store)
def _store_overload(out, i, x):
    dtype = out.dtype
    if dtype == types.float64:
        def store(out, i, x):
            out[i] = x
    elif dtype == types.float32:
        def store(out, i, x):
            out[i] = np.float32(x)
    elif dtype == types.uint16:
        def store(out, i, x):
            if HALF_BY_CPU:
                out[i] = _float32_to_float16_bits_by_cpu(np.float32(x))
            else:
                out[i] = np.uint16(_float32_to_float16_bits(np.float32(x)))
    elif dtype == types.int16:
        def store(out, i, x):
            out[i] = np.int16(np.uint16(_float32_to_bfloat16_bits(np.float32(x))))
    else:
        return None
    return store


# ---------------------------------------------------------------------------
# The kernels: words for a chunk into an L1-sized buffer, then the map into ``out``.

#: Words per chunk (a multiple of 4 so every chunk after the first is block-aligned).
CHUNK_WORDS = 2048


@_kernel_jit
def fill_uniform(k0, k1, c1, start, low, width, out):
    """out[i] = storage(low + width * uniform01(word start + i))."""
    n = out.size
    buf = np.empty(CHUNK_WORDS, np.uint64)
    pos = 0
    while pos < n:
        m = min(CHUNK_WORDS - ((start + pos) & 3), n - pos)
        philox_into(k0, k1, c1, start + pos, m, buf)
        dst = out[pos:pos + m]
        for i in range(m):
            _store(dst, i, low + width * _uniform01(buf[i]))
        pos += m


@njit(inline="always")
def _tail_list(flags, m, words, where, tail_words):
    """The indices i < m with flags[i] != 0 into where[:count], words[i] into tail_words[:count]."""
    count = 0
    i = 0
    if VECTOR_COMPRESS:
        while i + 8 <= m:  # count <= i, so the 8 lanes stored at count end by i + 8 <= m
            count = _compress8(flags, i, words, where, tail_words, count)
            i += 8
    while i < m:
        where[count] = i
        tail_words[count] = words[i]
        count += flags[i]
        i += 1
    return count


@njit(inline="always")
def _normal_family(k0, k1, c1, start, mean, std, p_low, p_width, sign, lo, hi, out, truncated):
    """The normal and truncated normal kernels; ``truncated`` is a compile-time constant.

    Per chunk: (1) every element by the central formula, vectorised, noting
    the elements with |p - 1/2| > 0.425; (2) those listed (register compress
    where AVX-512 has it); (3) their tail r and near-tail z, vectorised over
    the list; (4) stored over the central results, with the far tail (r > 5)
    computed there, one at a time.
    """
    n = out.size
    buf = np.empty(CHUNK_WORDS, np.uint64)
    flags = np.empty(CHUNK_WORDS, np.uint8)
    where = np.empty(CHUNK_WORDS, np.int64)
    tail_words = np.empty(CHUNK_WORDS, np.uint64)
    tail_q = np.empty(CHUNK_WORDS, np.float64)
    tail_r = np.empty(CHUNK_WORDS, np.float64)
    tail_z = np.empty(CHUNK_WORDS, np.float64)
    pos = 0
    while pos < n:
        m = min(CHUNK_WORDS - ((start + pos) & 3), n - pos)
        philox_into(k0, k1, c1, start + pos, m, buf)
        dst = out[pos:pos + m]
        for i in range(m):
            if truncated:
                q = (p_low + _open_uniform(buf[i]) * p_width) - 0.5
            else:  # open_uniform(w) - 1/2, one add fewer: see _open_q
                q = _open_q(buf[i])
            z = _ndtri_central(q)
            flags[i] = not abs(q) <= T.PPND_SPLIT1  # the complement of the central test, as ndtri
            if truncated:
                _store(dst, i, _clamp(mean + std * (sign * z), lo, hi))
            else:
                _store(dst, i, mean + std * z)
        count = _tail_list(flags, m, buf, where, tail_words)
        for j in range(count):
            w = tail_words[j]
            p = p_low + _open_uniform(w) * p_width if truncated else _open_uniform(w)
            q = p - 0.5
            r = _tail_r(p, q)
            tail_q[j] = q
            tail_r[j] = r
            tail_z[j] = _tail_near(r)
        for j in range(count):
            z = tail_z[j]
            if tail_r[j] > T.PPND_SPLIT2:
                z = _tail_far(tail_r[j])
            if tail_q[j] < 0.0:
                z = -z
            if truncated:
                _store(dst, where[j], _clamp(mean + std * (sign * z), lo, hi))
            else:
                _store(dst, where[j], mean + std * z)
        pos += m


@_kernel_jit
def fill_normal(k0, k1, c1, start, mean, std, out):
    """out[i] = storage(mean + std * ndtri(open_uniform(word start + i)))."""
    _normal_family(k0, k1, c1, start, mean, std, 0.0, 1.0, 1.0, 0.0, 0.0, out, False)  # p, sign, clamp unused


@_kernel_jit
def fill_truncated_normal(k0, k1, c1, start, mean, std, p_low, p_width, sign, lo, hi, out):
    """out[i] = storage(clamp(mean + std * (sign * ndtri(p_low + open_uniform(w) * p_width)), lo, hi))."""
    _normal_family(k0, k1, c1, start, mean, std, p_low, p_width, sign, lo, hi, out, True)


# ---------------------------------------------------------------------------
# Complex polar forms: transforms.polar_from_uniforms, one element at a time.

_SIN_SERIES = np.array(T._SIN_SERIES)
_COS_SERIES = np.array(T._COS_SERIES)


@njit(inline="always")
def _horner_array(c, x):
    """transforms._horner: c[0] + x*(c[1] + ... + x*c[n]), innermost first."""
    acc = c[c.size - 1]
    for j in range(c.size - 2, -1, -1):
        acc = acc * x + c[j]
    return acc


@_kernel_jit
def polar_into(truncated, scale, mass, u0, u2, real, imag):
    """radius = scale * sqrt(2 u0) (disc) or scale * sqrt(-log(1 - mass * u0)) (truncated); angle 2 pi u2
    by transforms.sincos_turns; real = radius * cos, imag = radius * sin."""
    for i in range(u0.size):
        if truncated:
            radius = scale * math.sqrt(-_log_positive(1.0 - mass * u0[i]))
        else:
            radius = scale * math.sqrt(2.0 * u0[i])
        quadrant = math.floor(u2[i] * 4.0 + 0.5)
        a = T.TWO_PI * (u2[i] - quadrant * 0.25)
        z = a * a
        sin_a = a * _horner_array(_SIN_SERIES, z)
        cos_a = _horner_array(_COS_SERIES, z)
        k = np.int64(quadrant) % 4
        if k == 0:
            sin, cos = sin_a, cos_a
        elif k == 1:
            sin, cos = cos_a, -sin_a
        elif k == 2:
            sin, cos = -sin_a, -cos_a
        else:
            sin, cos = -cos_a, sin_a
        real[i] = radius * cos
        imag[i] = radius * sin


# ---------------------------------------------------------------------------
# The backend.

#: Smallest part of a range handed to a thread; below two of them a range runs on the caller.
MIN_PART = BLOCK_ELEMENTS
#: Parts per thread: a few, so a thread slowed by other work gets fewer of them.
PARTS_PER_THREAD = 4


def _compiled_out(out: np.ndarray, dtype: str) -> np.ndarray:
    """The array the compiled kernels write; its dtype selects the rounding: float16 as uint16
    bits (Numba has no CPU float16), bfloat16 as int16 bits."""
    if dtype == "float16":
        return out.view(np.uint16)
    if dtype == "bfloat16":
        return out.view(np.int16)
    return out


def fill(kernel: T.Kernel, key: tuple[int, int], start: int, out: np.ndarray, dtype: str,
         substream: int = SUBSTREAM_VALUES) -> None:
    """Elements ``[start, start + out.size)`` of ``kernel`` into ``out`` (1-D, C-contiguous,
    storage dtype), on the calling thread."""
    if out.size == 0:
        return
    target = _compiled_out(out, dtype)
    k0, k1, c1 = np.uint64(key[0]), np.uint64(key[1]), np.uint64(substream)
    p = [float(value) for value in kernel.params]
    start = int(start)
    if kernel.kind == T.UNIFORM:
        fill_uniform(k0, k1, c1, start, p[0], p[1], target)
    elif kernel.kind == T.NORMAL:
        fill_normal(k0, k1, c1, start, p[0], p[1], target)
    elif kernel.kind == T.TRUNCATED_NORMAL:
        fill_truncated_normal(k0, k1, c1, start, p[0], p[1], p[2], p[3], p[4], p[5], p[6], target)
    else:
        raise ValueError(f"unknown kernel kind {kernel.kind!r}")


class NumbaBackend(Backend):
    """The NumPy reference's bytes, JIT-compiled; large ranges split across the CPU threads."""

    name = "numba"

    def __init__(self, threads: int | None = None):
        self.threads = threads or cpu_threads()

    @property
    def device(self) -> str:
        return f"cpu (numba, {self.threads} threads)"

    def random_into(self, kernel, key, start, out, dtype):
        if out.dtype != storage_dtype(dtype) or out.ndim != 1 or not out.flags.c_contiguous:
            staged = np.empty(out.size, dtype=storage_dtype(dtype))
            self.random_into(kernel, key, start, staged, dtype)
            out[...] = staged.reshape(out.shape)
            return
        count = out.size
        workers = min(self.threads, count // MIN_PART)
        if workers <= 1:
            fill(kernel, key, start, out, dtype)
            return
        # The calling thread and workers - 1 pool threads take parts from one queue until it is
        # empty; the bytes do not depend on who computes which part.
        part = (max(MIN_PART, -(-count // (PARTS_PER_THREAD * workers))) + 3) & ~3
        offsets = iter(range(0, count, part))
        lock = threading.Lock()

        def work():
            while True:
                with lock:
                    offset = next(offsets, None)
                if offset is None:
                    return
                fill(kernel, key, start + offset, out[offset:offset + part], dtype)

        helpers = [shared_pool().submit(work) for _ in range(workers - 1)]
        try:
            work()
        finally:
            for helper in helpers:
                if not helper.cancel():  # still queued behind other work: nothing left for it
                    helper.result()

    def complex_values(self, kernel, key, start, count):
        """The two real parts (complex normal) or the two uniforms (polar forms) by the compiled kernels,
        on substreams 0 and 2; the polar map compiled too (``polar_into``), operation for operation."""
        from ..engine.philox import SUBSTREAM_COMPLEX

        real_kernel, imag_kernel = T.complex_parts(kernel)
        first, second = np.empty(count, np.float64), np.empty(count, np.float64)
        fill(real_kernel, key, start, first, "float64")
        fill(imag_kernel, key, start, second, "float64", SUBSTREAM_COMPLEX)
        values = np.empty(count, dtype=np.complex128)
        if kernel.kind == T.COMPLEX_NORMAL:
            values.real, values.imag = first, second
            return values
        real, imag = np.empty(count, np.float64), np.empty(count, np.float64)
        polar_into(kernel.kind == T.COMPLEX_TRUNCATED, float(kernel.params[0]),
                   float(kernel.params[1]) if len(kernel.params) > 1 else 0.0, first, second, real, imag)
        values.real, values.imag = real, imag
        return values

    def warmup(self, dtypes=("float32", "float64", "float16", "bfloat16")) -> None:
        """Compile (or load from the disk cache) every kernel for ``dtypes`` now."""
        kernels = (T.uniform_kernel(0.0, 1.0), T.normal_kernel(0.0, 1.0),
                   T.truncated_normal_kernel(0.0, 1.0, -2.0, 2.0))
        for dtype in dtypes:
            for kernel in kernels:
                fill(kernel, (0, 0), 0, np.empty(8, dtype=storage_dtype(dtype)), dtype)


__all__ = ["CHUNK_WORDS", "NumbaBackend", "fill", "philox_into"]
