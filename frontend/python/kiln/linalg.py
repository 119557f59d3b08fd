"""numpy.linalg on LAPACK under kiln's one thread budget."""

from ctypes import byref, c_void_p

import numpy as np

from ._core import _call_with_inputs
from ._lib import Array, as_ndarray, check, lib


def solve(a, b):
    """numpy.linalg.solve: x with a @ x == b (a square, or a stack of square matrices).
    Raises KilnError (status ERROR_LINALG) for a singular matrix."""
    a, b = as_ndarray(a, "a"), as_ndarray(b, "b")

    def run(n, c_names, handles, _):
        result = c_void_p()
        check(lib.kiln_solve(handles[0], handles[1], byref(result)))
        return np.asarray(Array(result.value))

    return _call_with_inputs(("a", "b"), (a, b), run)
