"""kiln for NumPy users: fused, parallel array expressions over NumPy arrays, with no copies.

    import kiln
    r = kiln.evaluate("2*a + 3*b*c - 1.5")   # a, b, c from the caller's variables

A pure-Python package over kiln's C ABI (ctypes): it needs only NumPy. It loads
$KILN_LIBRARY, else the libkiln.so it was installed with.

- evaluate, explain: expressions (numexpr's evaluate, one fused pass on every core)
- set_num_threads, get_num_threads: the one thread budget of kiln's work and its BLAS;
  set_thread_num_threads, thread_budget: a calling thread's own share of it
- load, save, load_many, save_many: .npy files in parallel (mmap= to map)
- zeros, ones, full, arange, linspace, eye: arrays filled in parallel
- kiln.random: uniform, normal, integers, ... identical for any thread count
- matmul, kiln.linalg.solve: OpenBLAS/LAPACK under the same budget
- kiln.shared: create, open, unlink: arrays in shared memory across processes
- Array, asarray, from_dlpack: kiln's arrays; __dlpack__ both ways with numpy.from_dlpack
- kiln.dask (import it): the same expressions over Dask arrays, block by block, on a
  laptop or a cluster
- KilnError (a ValueError): what kiln refused, with .status and kiln's message
"""

from . import linalg, random, shared
from ._core import (arange, evaluate, explain, eye, from_dlpack, full, get_num_threads, linspace, load, load_many,
                    matmul, ones, save, save_many, set_num_threads, set_thread_num_threads, simd_isa,
                    thread_budget, zeros)
from ._lib import LIBRARY, Array, KilnError, asarray, lib, live_buffers

__version__ = lib.kiln_version().decode()

__all__ = ["Array", "KilnError", "LIBRARY", "arange", "asarray", "evaluate", "explain", "eye", "from_dlpack", "full",
           "get_num_threads", "linalg", "linspace", "live_buffers", "load", "load_many", "matmul", "ones", "random",
           "save", "save_many", "set_num_threads", "set_thread_num_threads", "shared", "simd_isa",
           "thread_budget", "zeros"]
