"""NumPy's side of `kiln bench --create`: the same fills and random numbers, timed the
same way (median of reps after one warm-up). Prints "name seconds" lines.

usage: create_numpy.py N REPS
"""
import sys

import numpy as np

from numpy_timing import median_time


def main():
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    out = np.empty(n)
    out.fill(0.0)  # pages touched: the warm-buffer rows write into memory already mapped
    rng = np.random.default_rng(1)
    rows = {
        "fill": lambda: out.fill(7.0),
        "full": lambda: np.full(n, 7.0),
        "arange": lambda: np.arange(n, dtype=np.float64),
        "uniform": lambda: rng.random(out=out),
        "normal": lambda: rng.standard_normal(out=out),
    }
    for name, f in rows.items():
        print(name, median_time(reps, f), flush=True)


if __name__ == "__main__":
    main()
