"""Worker processes sharing arrays with no copy: kiln makes the segments, NumPy works in them.

The parent creates two inputs and an output in shared memory through kiln's C ABI (ctypes),
fills the inputs with one fused kiln expression each, and hands the workers only the
segments' *names*. Each worker (multiprocessing) attaches with plain NumPy,
numpy.load("/dev/shm/NAME", mmap_mode="r+"), computes its slice of sqrt(a*a + b*b) into the
shared output, and returns nothing. The parent reduces the output with kiln. No array is
pickled, piped or copied: every process maps the same pages.

    /usr/bin/python3 examples/python/shm_workers.py [N_ELEMENTS [N_WORKERS]]

The library is $KILN_LIBRARY, else build/libkiln.so under the repository root.
"""

import ctypes
import multiprocessing as mp
import os
import pathlib
import sys

import numpy as np

KILN_FLOAT64 = 4
root = pathlib.Path(__file__).resolve().parents[2]
lib = ctypes.CDLL(os.environ.get("KILN_LIBRARY") or str(root / "build" / "libkiln.so"))
lib.kiln_last_error.restype = ctypes.c_char_p
lib.kiln_array_data.restype = ctypes.c_void_p
lib.kiln_array_data.argtypes = [ctypes.c_void_p]
lib.kiln_array_release.argtypes = [ctypes.c_void_p]
lib.kiln_shm_create.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int64),
                                ctypes.POINTER(ctypes.c_void_p)]
lib.kiln_shm_unlink.argtypes = [ctypes.c_char_p]
lib.kiln_eval.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_char_p),
                          ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]


def check(status, what):
    if status != 0:
        raise RuntimeError(f"{what}: {lib.kiln_last_error().decode()}")


def kiln_eval(expr, out=None):
    """An expression of no inputs (creation, random numbers), into `out` or a new array."""
    result = ctypes.c_void_p()
    check(lib.kiln_eval(expr.encode(), 0, None, None, out, ctypes.byref(result)), expr)
    return result


def work(names, index, count):
    a, b, out = (np.load(f"/dev/shm/{n}", mmap_mode="r+") for n in names)
    lo, hi = len(out) * index // count, len(out) * (index + 1) // count
    np.sqrt(a[lo:hi] * a[lo:hi] + b[lo:hi] * b[lo:hi], out=out[lo:hi])


def main(n, workers):
    prefix = f"kiln-example-py-{os.getpid()}"
    names = [f"{prefix}-{part}" for part in ("a", "b", "out")]
    handles = []
    try:
        for name in names:
            h = ctypes.c_void_p()
            check(lib.kiln_shm_create(name.encode(), KILN_FLOAT64, 1, (ctypes.c_int64 * 1)(n), ctypes.byref(h)), name)
            handles.append(h)
        kiln_eval(f"uniform(size={n}, seed=1)", handles[0])  # filled in place, in parallel
        kiln_eval(f"normal(size={n}, seed=2)", handles[1])
        ctx = mp.get_context("spawn")  # fresh processes: nothing inherited, only names sent
        with ctx.Pool(workers) as pool:
            pool.starmap(work, [(names, i, workers) for i in range(workers)])
        # The parent reads the workers' results in place, through the same pages.
        a, b, out = (np.ctypeslib.as_array(ctypes.cast(lib.kiln_array_data(h), ctypes.POINTER(ctypes.c_double)), (n,))
                     for h in handles)
        want = np.sqrt(a * a + b * b)
        assert np.array_equal(out, want), "a worker's slice is wrong"
        total = float(out.sum())
        print(f"{workers} workers, {n} elements: sum of sqrt(a*a + b*b) = {total:.6f}")
    finally:
        for h in handles:
            lib.kiln_array_release(h)
        for name in names:
            lib.kiln_shm_unlink(name.encode())


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, int(sys.argv[2]) if len(sys.argv) > 2 else 2)
