"""Random arrays filled in parallel, the same for any thread count: element i depends only
on (seed, i) (Philox4x32-10). NumPy's Generator methods, with the seed first and required.
"""

import numpy as np

from ._lib import as_ndarray, check, dtype_code, lib, new_array, shape_arg, wrap


def uniform(seed, shape, low=0.0, high=1.0, dtype=np.float64):
    """Uniform in [low, high); float32 or float64."""
    return new_array(lib.kiln_random_uniform, int(seed), dtype_code(dtype), *shape_arg(shape), float(low), float(high))


def random(seed, shape, dtype=np.float64):
    """Uniform in [0, 1), as numpy.random.Generator.random."""
    return uniform(seed, shape, 0.0, 1.0, dtype)


def normal(seed, shape, loc=0.0, scale=1.0, dtype=np.float64):
    """Normal with mean loc and standard deviation scale (>= 0); float32 or float64."""
    return new_array(lib.kiln_random_normal, int(seed), dtype_code(dtype), *shape_arg(shape), float(loc), float(scale))


def standard_normal(seed, shape, dtype=np.float64):
    """Normal with mean 0 and standard deviation 1."""
    return normal(seed, shape, 0.0, 1.0, dtype)


def integers(seed, shape, low, high=None, dtype=np.int64):
    """Integers in [low, high) (in [0, low) when high is None) with no modulo bias; int32 or int64."""
    if high is None:
        low, high = 0, low
    return new_array(lib.kiln_random_integers, int(seed), dtype_code(dtype), *shape_arg(shape), int(low), int(high))


def bernoulli(seed, shape, p):
    """bool, True with probability p."""
    return new_array(lib.kiln_random_bernoulli, int(seed), *shape_arg(shape), float(p))


def permutation(seed, n):
    """0..n-1 in random order (int64)."""
    return new_array(lib.kiln_random_permutation, int(seed), int(n))


def shuffle(seed, array):
    """Permutes the rows (axis 0) of a NumPy array in place, as permutation(seed, len(array)) orders them."""
    array = as_ndarray(array, "array")
    handle = wrap(array, "array", writable=True)
    try:
        check(lib.kiln_random_shuffle(int(seed), handle))
    finally:
        lib.kiln_array_release(handle)
