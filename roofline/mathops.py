"""max, min, ceil, a choice and the smooth maximum for floats, numpy arrays and sympy expressions.

The formulas of roofline are written once; these are the only operations whose spelling differs
between numpy (np.maximum, np.ceil, np.where) and sympy (sympy.Max, sympy.ceiling,
sympy.Piecewise), so they dispatch on their arguments. On plain numbers they return plain numbers.
"""
import math

import numpy as np


def is_symbolic(*values):
    """True if any value is a sympy expression (sympy is only imported if it already was)."""
    return any(type(v).__module__.startswith("sympy") for v in values)


def maximum(a, b):
    if is_symbolic(a, b):
        import sympy
        return sympy.Max(a, b)
    return np.maximum(a, b)


def minimum(a, b):
    if is_symbolic(a, b):
        import sympy
        return sympy.Min(a, b)
    return np.minimum(a, b)


def floor(x):
    """The largest whole number <= x, for floats (an int), numpy arrays and sympy expressions."""
    if is_symbolic(x):
        import sympy
        return sympy.floor(x)
    if np.ndim(x):
        return np.floor(x)
    return math.floor(x)


def where(condition, a, b):
    """a where `condition` holds, else b (elementwise for arrays; one of the two for numbers)."""
    if is_symbolic(condition, a, b):
        import sympy
        return sympy.Piecewise((a, condition), (b, True))
    if np.ndim(condition) == 0 and np.ndim(a) == 0 and np.ndim(b) == 0:
        return a if condition else b
    return np.where(condition, a, b)


def smooth_max(a, b, n):
    """(a^n + b^n)^(1/n) for a, b >= 0: equals max(a, b) as n -> infinity, 2^(1/n) max at a = b.

    Written as m (1 + (s / m)^n)^(1/n) with m = max, s = min, which cannot overflow. n = inf gives
    the hard maximum.
    """
    if n == float("inf"):
        return maximum(a, b)
    if is_symbolic(a, b, n):
        return (a ** n + b ** n) ** (1 / n)
    high = np.maximum(a, b)
    # a, b >= 0: where high is 0 so is low, and low / 1 = 0 gives the ratio 0 the formula needs
    ratio = np.minimum(a, b) / np.where(high > 0, high, 1.0)
    if np.ndim(ratio) == 0:
        return high * (1 + ratio ** n) ** (1 / n)
    # the same operations in place: one temporary array instead of five (sweeps are bound by them)
    np.power(ratio, n, out=ratio)
    ratio += 1
    np.power(ratio, 1 / n, out=ratio)
    ratio *= high
    return ratio


def ceil(x):
    """The smallest whole number >= x, for floats (an int), numpy arrays and sympy expressions."""
    if is_symbolic(x):
        import sympy
        return sympy.ceiling(x)
    if np.ndim(x):
        return np.ceil(x)
    return math.ceil(x)
