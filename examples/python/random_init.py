"""Random arrays filled in parallel: kiln.random.uniform / normal / integers against
numpy.random.default_rng(seed).

kiln's generator is counter-based (Philox4x32-10): element i depends only on (seed, i), so
the threads can fill their chunks independently and the array is the same for any thread
count. The script checks that (a budget of 1 thread against every core, via
kiln.set_num_threads) and that the same seed gives the same array. kiln's values are not
NumPy's (NumPy's default generator is PCG64), so against NumPy it compares statistics: the
mean and standard deviation of each distribution, within a few standard errors, and the range.

    /usr/bin/python3 examples/python/random_init.py [N_ELEMENTS]

N_ELEMENTS (default 10000000) is each array's size; keep it above 16384, below which kiln
runs on the calling thread and the thread-count check shows nothing. kiln is the package in
frontend/python (on PYTHONPATH) over $KILN_LIBRARY. Exits 1 if a check fails.
"""

import math
import sys

import numpy as np

import kiln
from timing import median_time, report

SEED = 20240601
LOW, HIGH = -50, 150  # integers in [LOW, HIGH)


# Each distribution: kiln's call, NumPy's, the exact mean and standard deviation, the range.
DISTRIBUTIONS = {
    "uniform [0, 1)": (lambda n: kiln.random.uniform(SEED, n), lambda n: np.random.default_rng(SEED).random(n),
                       0.5, math.sqrt(1 / 12), (0.0, 1.0)),
    "normal (0, 1)": (lambda n: kiln.random.normal(SEED, n), lambda n: np.random.default_rng(SEED).standard_normal(n),
                      0.0, 1.0, None),
    f"integers [{LOW}, {HIGH})": (lambda n: kiln.random.integers(SEED, n, LOW, HIGH),
                                  lambda n: np.random.default_rng(SEED).integers(LOW, HIGH, n),
                                  (LOW + HIGH - 1) / 2, math.sqrt(((HIGH - LOW) ** 2 - 1) / 12), (LOW, HIGH)),
}


def check_statistics(what, x, mean, std, value_range):
    """Sample mean and standard deviation within 6 standard errors (about 1 failure in 10^9
    for a correct generator), every value in range."""
    n = x.size
    tolerance = 6 * std / math.sqrt(n)
    got_mean, got_std = float(x.mean()), float(x.std())
    print(f"  {what:<8} mean {got_mean:+.5f} (exact {mean:+.5f})   std {got_std:.5f} (exact {std:.5f})")
    if abs(got_mean - mean) > tolerance or abs(got_std - std) > tolerance:
        sys.exit(f"MISMATCH: {what}: mean or std off by more than {tolerance:.2e}")
    if value_range is not None and not (x.min() >= value_range[0] and x.max() < value_range[1]):
        sys.exit(f"MISMATCH: {what}: values outside [{value_range[0]}, {value_range[1]}): {x.min()} .. {x.max()}")


def main(n):
    print(f"{n} elements each, kiln budget {kiln.get_num_threads()} threads")
    for name, (kiln_draw, numpy_draw, mean, std, value_range) in DISTRIBUTIONS.items():
        report(name, median_time(lambda: numpy_draw(n)), median_time(lambda: kiln_draw(n)))

        # The same array on one thread as on every core, and for the same seed again.
        previous = kiln.set_num_threads(1)
        serial = kiln_draw(n)
        kiln.set_num_threads(0)
        parallel = kiln_draw(n)
        kiln.set_num_threads(previous)
        if not (np.array_equal(serial, parallel) and np.array_equal(parallel, kiln_draw(n))):
            sys.exit(f"MISMATCH: {name}: kiln's array depends on the thread count or the run")

        check_statistics("kiln", parallel, mean, std, value_range)
        check_statistics("NumPy", numpy_draw(n), mean, std, value_range)  # the check itself is fair
    if np.array_equal(kiln.random.uniform(SEED, n), kiln.random.uniform(SEED + 1, n)):
        sys.exit("MISMATCH: seeds SEED and SEED + 1 give the same array")
    print("identical for 1 thread and every core; statistics match")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000)
