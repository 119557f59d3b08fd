"""Worker processes sharing arrays with no copy: kiln.shared makes the segments, every process maps them.

The parent creates two inputs and an output in POSIX shared memory with
kiln.shared.create(name, shape, dtype), a NumPy array over the segment, fills the inputs in
place with kiln's random generators, and hands the workers only the segments' *names*. Each
worker (multiprocessing) attaches with kiln.shared.open(name), computes its slice of
sqrt(a*a + b*b) into the shared output with one fused kiln pass (out= a slice of the
segment), and returns nothing. No array is pickled, piped or copied: every process maps the
same pages. The parent checks the output in place, and kiln.shared.unlink(name) removes the
names at the end.

For comparison, the NumPy-only version sends each worker its slices of a and b through
Pool.map, which pickles them down a pipe, and gets each result back the same way to
concatenate. Both run on the same, already started, pool: the times are the work and the
data's journey, not process start-up.

    /usr/bin/python3 examples/python/shm_workers.py [N_ELEMENTS [N_WORKERS]]

kiln is the package in frontend/python (on PYTHONPATH) over $KILN_LIBRARY; the spawned
workers inherit both. Exits 1 if a worker's slice is wrong.
"""

import multiprocessing as mp
import os
import sys

import numpy as np

import kiln
from timing import median_time


def start_worker():
    # The workers are the parallelism: one kiln thread each, so N workers use N cores.
    kiln.set_num_threads(1)


def work(names, index, count):
    a, b, out = (kiln.shared.open(n) for n in names)
    lo, hi = len(out) * index // count, len(out) * (index + 1) // count
    kiln.evaluate("sqrt(a*a + b*b)", local_dict={"a": a[lo:hi], "b": b[lo:hi]}, out=out[lo:hi])


def work_on_copies(pair):
    a, b = pair  # unpickled copies of the parent's slices
    return np.sqrt(a * a + b * b)  # pickled again on the way back


def main(n, workers):
    prefix = f"kiln-example-py-{os.getpid()}"
    names = [f"{prefix}-{part}" for part in ("a", "b", "out")]
    created, arrays = [], []
    try:
        for name in names:
            arrays.append(kiln.shared.create(name, n, np.float64))  # zero-filled
            created.append(name)
        a, b, out = arrays
        kiln.evaluate(f"uniform(size={n}, seed=1)", out=a)  # filled in place, in parallel
        kiln.evaluate(f"normal(size={n}, seed=2)", out=b)
        want = np.sqrt(a * a + b * b)

        ctx = mp.get_context("spawn")  # fresh processes: nothing inherited, only names sent
        with ctx.Pool(workers, initializer=start_worker) as pool:
            def shared():
                pool.starmap(work, [(names, i, workers) for i in range(workers)])

            def copied():
                bounds = [(n * i // workers, n * (i + 1) // workers) for i in range(workers)]
                return np.concatenate(pool.map(work_on_copies, [(a[lo:hi], b[lo:hi]) for lo, hi in bounds]))

            copied()  # both once untimed: first calls pay for page faults and kiln's planning
            shared()
            if not np.array_equal(copied(), want):
                sys.exit("MISMATCH: the NumPy version's result is wrong")
            t_copied = median_time(copied)
            out[:] = np.nan  # so a slice no worker wrote cannot pass
            t_shared = median_time(shared)

        # The parent reads the workers' results in place, through the same pages.
        if not np.array_equal(out, want):
            wrong = np.flatnonzero(out != want)
            sys.exit(f"MISMATCH: a worker's slice is wrong ({wrong.size} elements, first at {wrong[0]})")
        total = float(kiln.evaluate("sum(out)"))
        print(f"{workers} workers, {n} elements: sum of sqrt(a*a + b*b) = {total:.6f}")
        print(f"NumPy, slices pickled to workers {t_copied * 1e3:9.2f} ms   kiln.shared {t_shared * 1e3:9.2f} ms   "
              f"NumPy/kiln {t_copied / t_shared:5.2f}x")
    finally:
        for name in created:
            kiln.shared.unlink(name)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, int(sys.argv[2]) if len(sys.argv) > 2 else 2)
