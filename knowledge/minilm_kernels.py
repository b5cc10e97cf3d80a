"""The float32 numpy kernels of the MiniLM forward pass: GELU (exact erf form) and LayerNorm, in place."""

from __future__ import annotations

import numpy as np

_F32 = np.float32


# GELU(x) = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))), the exact form BERT uses.
# numpy has no erf ufunc (and np.vectorize(math.erf) is ~100x too slow), so we
# write erf(x / sqrt(2)) = tanh(x * S(x^2)) with S a degree-6 polynomial fitted
# (near-minimax, on 0 < x <= 4*sqrt(2)) to atanh(erf(x / sqrt(2))) / x.
# Absolute error of that erf: 5.8e-8 in exact arithmetic, 1.4e-7 when evaluated
# in float32 -- float32 rounding level (an ulp of 1.0 is 1.2e-7).  tanh
# saturates to +-1 by itself beyond the fitted range (the polynomial is
# increasing there, S(x^2)*x >= 9.7 for x > 4*sqrt(2)), so no clamping pass is
# needed, and numpy's tanh is SIMD-vectorised.  This takes ~18 cheap passes
# versus ~28 for the usual clamped rational erf.  Coefficients: lowest degree first.
_ERF_TANH_COEFS = (
    0.7978849417096593,
    0.03633308386070972,
    -3.259439794962746e-05,
    -5.530638956418864e-05,
    3.964774903794378e-06,
    -1.3226548522788647e-07,
    1.7562321729144964e-09,
)
_ERF_C = tuple(_F32(c) for c in _ERF_TANH_COEFS)
_ONE = _F32(1.0)

# Elements per GELU step: ~128 KB per scratch buffer keeps the passes inside
# the L2 cache, 3-4x faster than running each numpy op over the whole array.
_GELU_BLOCK = 32768


def _erf_sqrt1_2_inplace(x: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Write ``erf(x / sqrt(2))`` into ``s`` (``y`` is scratch); returns ``s``."""
    c = _ERF_C
    np.multiply(x, x, out=y)
    np.multiply(y, c[-1], out=s)
    for coef in c[-2:0:-1]:  # Horner in y = x^2
        s += coef
        s *= y
    s += c[0]
    s *= x
    return np.tanh(s, out=s)


def gelu2_inplace(h: np.ndarray) -> None:
    """``h = 2 * gelu(h)`` in place (exact erf form), float32.

    The factor 0.5 of GELU is folded (exactly, a power of two) into the next
    layer's weights.  Work is blocked so temporaries stay cache-resident.
    """
    if not h.flags.c_contiguous:  # reshape would silently copy
        raise ValueError("gelu2_inplace needs a C-contiguous array")
    flat = h.reshape(-1)
    n = flat.shape[0]
    block = min(n, _GELU_BLOCK)
    s_buf = np.empty(block, _F32)
    y_buf = np.empty(block, _F32)
    # x^k overflows to inf for |x| > ~1e3; tanh(+-inf) = +-1 is the right
    # answer there, so silence the (harmless) overflow warning.
    with np.errstate(over="ignore"):
        for start in range(0, n, block):
            x = flat[start : start + block]
            m = x.shape[0]
            s = _erf_sqrt1_2_inplace(x, s_buf[:m], y_buf[:m])
            s += _ONE
            x *= s


def layer_norm_inplace(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> None:
    """LayerNorm over axis 0 of a ``(features, tokens)`` array, in place.

    ``gamma``/``beta`` are ``(features, 1)`` columns.
    """
    inv_n = _F32(1.0 / x.shape[0])
    mean = x.sum(axis=0)
    mean *= inv_n
    x -= mean
    # einsum computes the column sums of squares without a full-size temporary.
    var = np.einsum("ij,ij->j", x, x)
    var *= inv_n
    var += _F32(eps)
    np.sqrt(var, out=var)
    x /= var
    x *= gamma
    x += beta
