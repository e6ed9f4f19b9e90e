"""Words to floats, with the same bits on every machine: the NumPy reference.

Only correctly rounded IEEE-754 binary64 operations appear here (+ - * /,
sqrt, exact int<->float conversions, frexp, comparisons), each written in the
order the other backends (Numba, CUDA, host C++) repeat. No libm
transcendental is called and nothing is fused. ``docs/rng.md`` states every
step; this module is the executable form of that text.

Every element consumes exactly one 64-bit word, so element ``i`` of a tensor
depends on word ``i`` alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TWO_POW_M53 = 2.0 ** -53

# fdlibm e_log.c: ln2 split so that k * LN2_HI is exact, and the minimax
# coefficients of (log(1+f) - 2s + s*f) / s**3 in s**2, s = f / (2 + f).
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
LG1 = 6.666666666666735130e-01
LG2 = 3.999999999940941908e-01
LG3 = 2.857142874366239149e-01
LG4 = 2.222219843214978396e-01
LG5 = 1.818357216161805012e-01
LG6 = 1.531383769920937332e-01
LG7 = 1.479819860511658591e-01
SQRT_HALF = 0.70710678118654752440

# Wichura (1988), AS 241 PPND16: z = Phi^-1(p) to about 1e-16 relative.
# Central region |p - 1/2| <= 0.425, in r = 0.180625 - q^2.
PPND_A = (3.3871328727963666080e0, 1.3314166789178437745e2, 1.9715909503065514427e3,
          1.3731693765509461125e4, 4.5921953931549871457e4, 6.7265770927008700853e4,
          3.3430575583588128105e4, 2.5090809287301226727e3)
PPND_B = (1.0, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
          2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4,
          5.2264952788528545610e3)
# Intermediate tail, r = sqrt(-log(min(p, 1-p))) - 1.6 for r <= 5 (before the shift).
PPND_C = (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
          3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
          2.27238449892691845833e-2, 7.74545014278341407640e-4)
PPND_D = (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
          1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
          1.05075007164441684324e-9)
# Far tail, r - 5 for r > 5.
PPND_E = (6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
          2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
          2.71155556874348757815e-5, 2.01033439929228813265e-7)
PPND_F = (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
          7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
          2.04426310338993978564e-15)
PPND_SPLIT1 = 0.425
PPND_SPLIT2 = 5.0
PPND_CONST1 = 0.180625
PPND_CONST2 = 1.6


# ---------------------------------------------------------------------------
# Words -> uniforms


def uniform01(words: np.ndarray) -> np.ndarray:
    """u = (w >> 11) * 2**-53, in [0, 1) on the 53-bit grid (exact)."""
    return (words >> np.uint64(11)).astype(np.float64) * TWO_POW_M53


def open_uniform(words: np.ndarray) -> np.ndarray:
    """u = (2 * (w >> 12) + 1) * 2**-53, in (0, 1), symmetric: 1 - u is exact and on the grid."""
    odd = ((words >> np.uint64(12)) << np.uint64(1)) | np.uint64(1)
    return odd.astype(np.float64) * TWO_POW_M53


# ---------------------------------------------------------------------------
# Elementary functions from IEEE operations


def _horner(coefficients: tuple[float, ...], x):
    """c[0] + x*(c[1] + x*(... + x*c[n])), innermost first."""
    acc = coefficients[-1]
    for c in coefficients[-2::-1]:
        acc = acc * x + c
    return acc


def log_positive(x: np.ndarray) -> np.ndarray:
    """Natural log of positive, finite, normal binary64 values (fdlibm's reduction).

    x = m * 2**k with m in [sqrt(1/2), sqrt(2)); f = m - 1; s = f / (2 + f);
    log(x) = k*LN2_HI - ((f*f/2 - (s*(f*f/2 + R(s^2)) + k*LN2_LO)) - f).
    """
    m, k = np.frexp(x)
    low = m < SQRT_HALF
    m = np.where(low, m * 2.0, m)
    dk = (k - low).astype(np.float64)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (LG2 + w * (LG4 + w * LG6))
    t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)))
    r = t2 + t1
    hfsq = 0.5 * f * f
    return dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)


def ndtri(p: np.ndarray) -> np.ndarray:
    """Inverse standard normal CDF of p in (0, 1), AS 241 PPND16.

    q = p - 1/2; |q| <= 0.425: z = q * A(r)/B(r), r = 0.180625 - q*q.
    Otherwise r = sqrt(-log(min(p, 1-p))); r <= 5: C(r-1.6)/D(r-1.6),
    else E(r-5)/F(r-5); negated where q < 0.
    """
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    z = np.empty_like(p)
    central = np.abs(q) <= PPND_SPLIT1
    qc = q[central]
    rc = PPND_CONST1 - qc * qc
    z[central] = qc * (_horner(PPND_A, rc) / _horner(PPND_B, rc))
    tail = ~central
    if tail.any():
        qt = q[tail]
        pt = p[tail]
        rt = np.where(qt < 0.0, pt, 1.0 - pt)
        rt = np.sqrt(-log_positive(rt))
        near = rt <= PPND_SPLIT2
        zt = np.empty_like(rt)
        rn = rt[near] - PPND_CONST2
        zt[near] = _horner(PPND_C, rn) / _horner(PPND_D, rn)
        rf = rt[~near] - PPND_SPLIT2
        zt[~near] = _horner(PPND_E, rf) / _horner(PPND_F, rf)
        z[tail] = np.where(qt < 0.0, -zt, zt)
    return z


# ---------------------------------------------------------------------------
# Scalars computed once per spec (plain Python floats: IEEE binary64 with the
# same correctly rounded operations everywhere), passed to every backend.

_EXP_TAYLOR = tuple(1.0 / math.factorial(n) for n in range(0, 22))
_INV_LN2 = 1.44269504088896338700e+00


def exp_scalar(x: float) -> float:
    """e**x: k = round(x / ln2), r = (x - k*LN2_HI) - k*LN2_LO, Taylor series of degree 21, times 2**k."""
    if x < -746.0:
        return 0.0
    if x > 709.0:
        return math.inf
    k = math.floor(x * _INV_LN2 + 0.5)
    r = (x - k * LN2_HI) - k * LN2_LO
    return math.ldexp(_horner(_EXP_TAYLOR, r), k)


_INV_SQRT_2PI = 0.39894228040143267794


def normal_pdf_scalar(x: float) -> float:
    return exp_scalar(-0.5 * x * x) * _INV_SQRT_2PI


_CDF_SERIES_TERMS = 120
_CDF_FRACTION_TERMS = 400
_CDF_SWITCH = 2.0


def normal_cdf_scalar(x: float) -> float:
    """Phi(x) from IEEE operations only.

    |x| < 2: Phi(x) = 1/2 + phi(x) * sum_n x^(2n+1) / (1*3*...*(2n+1)).
    x <= -2: Phi(x) = phi(x) / (t + 1/(t + 2/(t + 3/(t + ...)))), t = -x,
    the continued fraction evaluated backwards from a fixed depth.
    x >= 2: 1 - Phi(-x).
    """
    if math.isnan(x):
        raise ValueError("normal_cdf_scalar of NaN")
    if x >= _CDF_SWITCH:
        return 1.0 - normal_cdf_scalar(-x)
    if x <= -_CDF_SWITCH:
        if x < -40.0:
            return 0.0
        t = -x
        acc = t
        for n in range(_CDF_FRACTION_TERMS, 0, -1):
            acc = t + n / acc
        return normal_pdf_scalar(t) / acc
    term = x
    total = x
    x2 = x * x
    for n in range(1, _CDF_SERIES_TERMS):
        term = term * x2 / (2 * n + 1)
        total = total + term
    return 0.5 + normal_pdf_scalar(x) * total


# ---------------------------------------------------------------------------
# Elementwise kernels: the unit of work every backend implements.

UNIFORM = "uniform"
NORMAL = "normal"
TRUNCATED_NORMAL = "truncated_normal"


@dataclass(frozen=True)
class Kernel:
    """An elementwise map from word to float64.

    uniform(low, width):          x = low + width * uniform01(w)
    normal(mean, std):            x = mean + std * ndtri(open_uniform(w))
    truncated_normal(mean, std, p_low, p_width, sign, lo, hi):
        z = sign * ndtri(p_low + open_uniform(w) * p_width)
        x = min(max(mean + std * z, lo), hi), where max(x, lo) = x if x > lo else lo
        and min(x, hi) = x if x < hi else hi
    """

    kind: str
    params: tuple[float, ...]
    #: Post-multiplier of the float64 value, before rounding (docs/rng.md section 5); None = none.
    scale: float | None = None

    @property
    def unscaled(self) -> "Kernel":
        return self if self.scale is None else Kernel(self.kind, self.params)


def uniform_kernel(low: float, high: float) -> Kernel:
    return Kernel(UNIFORM, (float(low), float(high) - float(low)))


def normal_kernel(mean: float, std: float) -> Kernel:
    return Kernel(NORMAL, (float(mean), float(std)))


def truncated_normal_kernel(mean: float, std: float, alpha: float, beta: float,
                            lo: float | None = None, hi: float | None = None) -> Kernel:
    """N(mean, std) restricted to [mean + alpha*std, mean + beta*std], by inversion.

    Results are clamped to [lo, hi] (default: the interval's ends), so rounding
    can never leave it. An interval lying mostly above the mean is sampled as
    its mirror image below it and negated, so Phi is evaluated where it has
    full precision.
    """
    sign = 1.0
    lo_std, hi_std = alpha, beta
    if alpha + beta > 0.0:
        sign, lo_std, hi_std = -1.0, -beta, -alpha
    p_low = normal_cdf_scalar(lo_std)
    p_width = normal_cdf_scalar(hi_std) - p_low
    lo = mean + alpha * std if lo is None else lo
    hi = mean + beta * std if hi is None else hi
    return Kernel(TRUNCATED_NORMAL, (float(mean), float(std), p_low, p_width, sign, float(lo), float(hi)))


def truncated_mass(alpha: float, beta: float) -> float:
    """Probability mass Phi(beta) - Phi(alpha) as the kernel will compute it."""
    return truncated_normal_kernel(0.0, 1.0, alpha, beta).params[3]


#: Largest |ndtri(open_uniform(w))| over all words: ndtri(2**-53) is about -8.13.
MAX_ABS_NORMAL_DEVIATE = 8.2


def kernel_magnitude(kernel: Kernel) -> float:
    """An upper bound on |value| over all words (inf or NaN if the scalars overflow)."""
    p = kernel.params
    if kernel.kind == UNIFORM:
        return max(abs(p[0]), abs(p[0] + p[1]))
    if kernel.kind == NORMAL:
        return abs(p[0]) + MAX_ABS_NORMAL_DEVIATE * p[1]
    return max(abs(p[5]), abs(p[6]))


def apply_kernel(kernel: Kernel, words: np.ndarray) -> np.ndarray:
    """The reference float64 values of ``kernel`` for ``words`` (times its scale, if any)."""
    if kernel.scale is not None:
        return apply_kernel(kernel.unscaled, words) * kernel.scale
    p = kernel.params
    if kernel.kind == UNIFORM:
        return p[0] + p[1] * uniform01(words)
    if kernel.kind == NORMAL:
        return p[0] + p[1] * ndtri(open_uniform(words))
    if kernel.kind == TRUNCATED_NORMAL:
        mean, std, p_low, p_width, sign, lo, hi = p
        z = sign * ndtri(p_low + open_uniform(words) * p_width)
        x = mean + std * z
        x = np.where(x > lo, x, lo)  # spelled out: on a tie (+-0) the bound wins, on every platform
        return np.where(x < hi, x, hi)
    raise ValueError(f"unknown kernel kind {kernel.kind!r}")


# ---------------------------------------------------------------------------
# Complex kernels: element i takes word i of substream 0 (w0) and word i of
# substream 2 (w2), so random access is kept. JAX's complex definitions
# (jax/_src/nn/initializers.py, jax.random.normal for complex dtypes):

COMPLEX_NORMAL = "complex_normal"
COMPLEX_DISC = "complex_disc"
COMPLEX_TRUNCATED = "complex_truncated_normal"
COMPLEX_KINDS = (COMPLEX_NORMAL, COMPLEX_DISC, COMPLEX_TRUNCATED)

TWO_PI = 6.283185307179586
#: 1/n!, each the correctly rounded quotient, for the sin/cos series on [-pi/4, pi/4].
_INVERSE_FACTORIAL = tuple(1 / math.factorial(n) for n in range(0, 24))
_SIN_SERIES = tuple((-1) ** k * _INVERSE_FACTORIAL[2 * k + 1] for k in range(11))
_COS_SERIES = tuple((-1) ** k * _INVERSE_FACTORIAL[2 * k] for k in range(12))


def complex_normal_kernel(mean: float, std: float) -> Kernel:
    """re = mean + s * ndtri(open_uniform(w0)), im = s * ndtri(open_uniform(w2)), s = std * sqrt(1/2):
    E|z - mean|^2 = std^2, each part variance std^2 / 2 (jax.random.normal, torch normal_ on complex)."""
    return Kernel(COMPLEX_NORMAL, (float(mean), float(std) * SQRT_HALF))


def complex_disc_kernel(scale: float) -> Kernel:
    """Uniform on the disc of radius scale * sqrt(2) (JAX _complex_uniform times scale): radius
    scale * sqrt(2 * uniform01(w0)), angle 2 pi uniform01(w2); E|z|^2 = scale^2."""
    return Kernel(COMPLEX_DISC, (float(scale),))


def complex_truncated_normal_kernel(scale: float, upper: float) -> Kernel:
    """Complex normal with E|z|^2 = 1 before truncation, modulus cut at ``upper``, times ``scale`` (JAX
    _complex_truncated_normal): radius scale * sqrt(-log(1 - m * uniform01(w0))), m = 1 - exp(-upper^2);
    angle 2 pi uniform01(w2)."""
    return Kernel(COMPLEX_TRUNCATED, (float(scale), 1.0 - exp_scalar(-(float(upper) * float(upper)))))


def sincos_turns(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sin 2 pi u, cos 2 pi u) for u in [0, 1) from + - * only: k = floor(4u + 1/2), f = u - k/4 (exact),
    a = TWO_PI * f in [-pi/4, pi/4], Taylor series of sin and cos in a*a by Horner (1/n! to n = 23),
    then the quadrant k mod 4 rotates (cos, sin)."""
    quadrant = np.floor(u * 4.0 + 0.5)
    a = TWO_PI * (u - quadrant * 0.25)
    z = a * a
    sin_a = a * _horner(_SIN_SERIES, z)
    cos_a = _horner(_COS_SERIES, z)
    k = quadrant.astype(np.int64) % 4
    sin = np.select([k == 0, k == 1, k == 2], [sin_a, cos_a, -sin_a], -cos_a)
    cos = np.select([k == 0, k == 1, k == 2], [cos_a, -sin_a, -cos_a], sin_a)
    return sin, cos


def complex_parts(kernel: Kernel) -> tuple[Kernel, Kernel]:
    """The real kernels a complex kernel applies to w0 and to w2: for complex_normal the two parts
    themselves; for the polar forms uniform01 (uniform(0, 1): 0 + 1 * u is u exactly), which
    :func:`polar_from_uniforms` turns into (real, imaginary)."""
    if kernel.kind == COMPLEX_NORMAL:
        return normal_kernel(kernel.params[0], kernel.params[1]), normal_kernel(0.0, kernel.params[1])
    if kernel.kind in (COMPLEX_DISC, COMPLEX_TRUNCATED):
        return uniform_kernel(0.0, 1.0), uniform_kernel(0.0, 1.0)
    raise ValueError(f"unknown complex kernel kind {kernel.kind!r}")


def polar_from_uniforms(kernel: Kernel, u0: np.ndarray, u2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(real, imaginary) of a polar complex kernel from u0 = uniform01(w0), u2 = uniform01(w2)."""
    p = kernel.params
    if kernel.kind == COMPLEX_DISC:
        radius = p[0] * np.sqrt(2.0 * u0)
    else:
        radius = p[0] * np.sqrt(-log_positive(1.0 - p[1] * u0))
    sin, cos = sincos_turns(u2)
    return radius * cos, radius * sin


def apply_complex_kernel(kernel: Kernel, w0: np.ndarray, w2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference float64 (real, imaginary) parts of a complex kernel for words w0, w2."""
    real_kernel, imag_kernel = complex_parts(kernel)
    first, second = apply_kernel(real_kernel, w0), apply_kernel(imag_kernel, w2)
    if kernel.kind == COMPLEX_NORMAL:
        return first, second
    return polar_from_uniforms(kernel, first, second)


def complex_kernel_magnitude(kernel: Kernel) -> float:
    """An upper bound on |real| and |imaginary| over all words."""
    p = kernel.params
    if kernel.kind == COMPLEX_NORMAL:
        return abs(p[0]) + MAX_ABS_NORMAL_DEVIATE * p[1]
    if kernel.kind == COMPLEX_DISC:
        return p[0] * math.sqrt(2.0)
    return p[0] * math.sqrt(-math.log(1.0 - p[1])) * (1.0 + 1e-12)


# ---------------------------------------------------------------------------
# float64 -> storage dtype, round to nearest even at each step.


def round_to_storage(values: np.ndarray, dtype: str) -> np.ndarray:
    """float64 -> float64 | float32 | float16 (via float32) | bfloat16 bits as uint16 (via float32);
    float64 or complex128 -> complex128 | complex64 (each part rounded to float32)."""
    if dtype in ("complex64", "complex128"):
        return np.asarray(values).astype(dtype)
    if dtype == "float64":
        return np.asarray(values, dtype=np.float64)
    single = np.asarray(values, dtype=np.float64).astype(np.float32)
    if dtype == "float32":
        return single
    if dtype == "float16":
        return single.astype(np.float16)
    if dtype == "bfloat16":
        return float32_to_bfloat16_bits(single)
    raise ValueError(f"unknown dtype {dtype!r}")


def float32_to_bfloat16_bits(single: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 bits, nearest even: (b + 0x7FFF + ((b >> 16) & 1)) >> 16."""
    bits = single.view(np.uint32).astype(np.uint64)
    rounded = (bits + np.uint64(0x7FFF) + ((bits >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    return rounded.astype(np.uint16)
