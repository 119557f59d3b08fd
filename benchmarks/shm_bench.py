"""`kiln bench --shm`: handing a big float64 array to worker processes and getting a
reduced result back, three ways, in one run (Debian's python3-numpy on the NumPy side):

  pickling               multiprocessing.Pool.map with the array halves as arguments (what
                         passing NumPy arrays to workers does: pickled through a pipe)
  multiprocessing.shared_memory
                         the array already in a SharedMemory block; workers get its name,
                         attach, wrap it with np.ndarray and sum their half
  kiln shared memory     the array already in a kiln segment; workers get its name, attach
                         with kiln_shm_open and sum their half with kiln (sum over a view)

Every worker returns one float; the parent adds them. The pool is started before timing.
Also: the time one worker takes to attach (kiln_shm_open + release), by array size.

    /usr/bin/python3 benchmarks/shm_bench.py [--mb 800] [--workers 2] [--reps 5] [--library build/libkiln.so]
"""

import argparse
import ctypes
import multiprocessing as mp
import os
import pathlib
import statistics
import time
from multiprocessing import shared_memory

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--mb", type=float, default=800)
parser.add_argument("--workers", type=int, default=2)
parser.add_argument("--reps", type=int, default=5)
parser.add_argument("--library", default=os.environ.get("KILN_LIBRARY")
                    or str(pathlib.Path(__file__).resolve().parents[1] / "build" / "libkiln.so"))
args = parser.parse_args()

lib = ctypes.CDLL(args.library)
lib.kiln_last_error.restype = ctypes.c_char_p
lib.kiln_array_data.restype = ctypes.c_void_p
lib.kiln_array_data.argtypes = [ctypes.c_void_p]
lib.kiln_array_release.argtypes = [ctypes.c_void_p]
lib.kiln_array_wrap.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int64),
                                ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
lib.kiln_shm_create.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int64),
                                ctypes.POINTER(ctypes.c_void_p)]
lib.kiln_shm_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
lib.kiln_shm_unlink.argtypes = [ctypes.c_char_p]
lib.kiln_eval.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_char_p),
                          ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
lib.kiln_set_num_threads.argtypes = [ctypes.c_int]


def check(status, what):
    if status:
        raise RuntimeError(f"{what}: {lib.kiln_last_error().decode()}")


def scalar(handle):
    return ctypes.cast(lib.kiln_array_data(handle), ctypes.POINTER(ctypes.c_double))[0]


def kiln_sum_of(ptr, n):
    """sum(a) over n float64s at ptr, with kiln, on a view (no copy)."""
    view, result = ctypes.c_void_p(), ctypes.c_void_p()
    check(lib.kiln_array_wrap(ptr, 4, 1, (ctypes.c_int64 * 1)(n), None, None, None, ctypes.byref(view)), "wrap")
    names = (ctypes.c_char_p * 1)(b"a")
    arrays = (ctypes.c_void_p * 1)(view.value)
    check(lib.kiln_eval(b"sum(a)", 1, names, arrays, None, ctypes.byref(result)), "sum")
    s = scalar(result)
    lib.kiln_array_release(result)
    lib.kiln_array_release(view)
    return s


# --- workers ------------------------------------------------------------------------

def pickled_sum(half):
    return float(half.sum())


def shared_memory_sum(name, n, index, count):
    block = shared_memory.SharedMemory(name=name)
    a = np.ndarray((n,), np.float64, buffer=block.buf)
    lo, hi = n * index // count, n * (index + 1) // count
    s = float(a[lo:hi].sum())
    del a
    block.close()
    return s


def kiln_shm_sum(name, index, count):
    lib.kiln_set_num_threads(1)  # the workers are the parallelism
    h = ctypes.c_void_p()
    check(lib.kiln_shm_open(name.encode(), 1, ctypes.byref(h)), "attach")
    n = SIZE
    lo, hi = n * index // count, n * (index + 1) // count
    s = kiln_sum_of(lib.kiln_array_data(h) + 8 * lo, hi - lo)
    lib.kiln_array_release(h)
    return s


def kiln_attach_time(name, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        h = ctypes.c_void_p()
        check(lib.kiln_shm_open(name.encode(), 1, ctypes.byref(h)), "attach")
        lib.kiln_array_release(h)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


SIZE = int(args.mb * 1e6 / 8)


def median_time(f, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts), max(ts)


def main():
    n, w = SIZE, args.workers
    prefix = f"kiln-bench-{os.getpid()}"
    h = ctypes.c_void_p()
    check(lib.kiln_shm_create(prefix.encode(), 4, 1, (ctypes.c_int64 * 1)(n), ctypes.byref(h)), "create")
    try:
        res = ctypes.c_void_p()
        check(lib.kiln_eval(f"uniform(size={n}, seed=3)".encode(), 0, None, None, h, ctypes.byref(res)), "fill")
        a = np.ctypeslib.as_array(ctypes.cast(lib.kiln_array_data(h), ctypes.POINTER(ctypes.c_double)), (n,))
        block = shared_memory.SharedMemory(create=True, size=8 * n)
        b = np.ndarray((n,), np.float64, buffer=block.buf)
        b[:] = a
        want = float(a.sum())
        halves = [a[n * i // w:n * (i + 1) // w] for i in range(w)]
        with mp.get_context("fork").Pool(w) as pool:
            pool.map(abs, range(w))  # started before timing
            rows = {
                "pickling (Pool.map of the halves)": lambda: sum(pool.map(pickled_sum, halves)),
                "multiprocessing.shared_memory": lambda: sum(pool.starmap(shared_memory_sum, [(block.name, n, i, w) for i in range(w)])),
                "kiln shared memory": lambda: sum(pool.starmap(kiln_shm_sum, [(prefix, i, w) for i in range(w)])),
            }
            for label, f in rows.items():
                got = f()
                assert abs(got - want) <= 1e-9 * abs(want), (label, got, want)
            print(f"{args.mb:.0f} MB float64 ({n} elements) to {w} workers, each sums its half; median of {args.reps} (min-max)")
            times = {}
            for label, f in rows.items():
                med, lo, hi = median_time(f, args.reps)
                times[label] = med
                print(f"  {label:38s} {1e3 * med:10.2f} ms  ({1e3 * lo:.2f}-{1e3 * hi:.2f})")
            base = times["pickling (Pool.map of the halves)"]
            print(f"  pickling / kiln: {base / times['kiln shared memory']:.1f}x;"
                  f" pickling / shared_memory: {base / times['multiprocessing.shared_memory']:.1f}x")
        del b
        block.close()
        block.unlink()
        # Attaching does not depend on the size.
        print("time to attach (kiln_shm_open + release), one process, median of 200:")
        for mb in (8, 80, args.mb):
            name = f"{prefix}-{int(mb)}"
            hh = ctypes.c_void_p()
            check(lib.kiln_shm_create(name.encode(), 4, 1, (ctypes.c_int64 * 1)(int(mb * 1e6 / 8)), ctypes.byref(hh)), "create")
            with mp.get_context("fork").Pool(1) as pool:
                t = pool.apply(kiln_attach_time, (name, 200))
            print(f"  {mb:6.0f} MB: {1e6 * t:8.1f} us")
            lib.kiln_array_release(hh)
            lib.kiln_shm_unlink(name.encode())
    finally:
        lib.kiln_array_release(h)
        lib.kiln_shm_unlink(prefix.encode())


if __name__ == "__main__":
    main()
