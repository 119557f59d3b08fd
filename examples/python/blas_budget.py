"""Matrix products and a linear solve under kiln's one thread budget: kiln.matmul and
kiln.linalg.solve against NumPy's @ and np.linalg.solve.

kiln.set_num_threads(n) bounds everything kiln runs, its BLAS/LAPACK calls included, and
kiln.get_num_threads() reads that budget back. The script times both at a budget of 1 and of
every core (NumPy runs on OpenBLAS's own threads either way), checks every result against
NumPy's, and then lets several Python threads call kiln.matmul at once: counting the
process's threads (/proc/self/task) shows they share the one budget instead of each bringing
its own cores' worth of BLAS threads.

    /usr/bin/python3 examples/python/blas_budget.py [N]

N (default 1500) is the matrices' size, N x N float64. kiln is the package in
frontend/python (on PYTHONPATH) over $KILN_LIBRARY. Exits 1 if a result differs from NumPy's
or kiln runs more threads than its budget allows.
"""

import os
import sys
import threading
import time

import numpy as np

import kiln
from timing import median_time, report


def count_threads():
    return len(os.listdir("/proc/self/task"))


def check_close(what, got, want):
    if got.shape != want.shape:
        sys.exit(f"MISMATCH: {what}: shape {got.shape}, NumPy's {want.shape}")
    if not np.allclose(got, want, rtol=1e-10, atol=1e-10):
        sys.exit(f"MISMATCH: {what}: largest difference {np.max(np.abs(got - want))}")


def concurrent_callers(a, b, want_product, baseline, callers=4):
    """Several Python threads calling kiln.matmul at once under a budget of every core: each
    caller works on its own call, and kiln adds at most budget - 1 workers for all of them."""
    budget = kiln.get_num_threads()
    results, stop = [None] * callers, threading.Event()

    def caller(i):
        # Keep calling until the sampling below is done, so the callers overlap at any size.
        while True:
            results[i] = kiln.matmul(a, b)
            if stop.is_set():
                break

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    most, end = count_threads(), time.perf_counter() + 0.3
    while time.perf_counter() < end:
        most = max(most, count_threads())
        time.sleep(0.001)
    stop.set()
    for t in threads:
        t.join()
    for i, r in enumerate(results):
        check_close(f"matmul from caller thread {i}", r, want_product)
    limit = baseline + callers + budget - 1
    print(f"{callers} threads calling kiln.matmul at once: at most {most} threads in the process "
          f"(limit {limit}: {baseline} before kiln, {callers} callers, {budget - 1} for kiln's workers)")
    if most > limit:
        sys.exit(f"MISMATCH: {most} threads, more than the budget of {budget} allows ({limit})")


def main(n):
    # Before any kiln work: this thread and OpenBLAS's own idle pool, which it starts on load.
    baseline = count_threads()
    kiln.set_num_threads(0)  # every core, as kiln counts them
    cores = kiln.get_num_threads()
    rng = np.random.default_rng(0)
    a = rng.random((n, n)) + n * np.eye(n)  # diagonally dominant: well conditioned, so allclose is tight
    b = rng.random((n, n))
    want_product, want_solution = a @ b, np.linalg.solve(a, b)
    print(f"{n}x{n} float64; NumPy runs on OpenBLAS's own threads whatever kiln's budget")
    # First, while only NumPy has run: a lone big solve later may let OpenBLAS grow its own
    # pool up to the budget, which would blur the count.
    concurrent_callers(a, b, want_product, baseline)

    for budget in sorted({1, cores}):
        kiln.set_num_threads(budget)
        if kiln.get_num_threads() != budget:
            sys.exit(f"MISMATCH: set_num_threads({budget}) but get_num_threads() is {kiln.get_num_threads()}")
        print(f"kiln budget: get_num_threads() = {kiln.get_num_threads()}")
        check_close("matmul", kiln.matmul(a, b), want_product)
        check_close("linalg.solve", kiln.linalg.solve(a, b), want_solution)
        report(f"  matmul {n}x{n}", median_time(lambda: a @ b), median_time(lambda: kiln.matmul(a, b)))
        report(f"  solve {n}x{n}", median_time(lambda: np.linalg.solve(a, b)),
               median_time(lambda: kiln.linalg.solve(a, b)))
    kiln.set_num_threads(0)
    print("all results match NumPy's")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1500)
