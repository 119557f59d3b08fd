"""NumPy's side of `kiln bench --io`: the same files, timed the same way (median of reps,
after one warm-up). Prints "name seconds" lines that kiln bench reads.

usage: io_numpy.py BIG.npy SMALL_DIR NFILES REPS
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from numpy_timing import median_time


def main():
    big, small_dir, nfiles, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    paths = [os.path.join(small_dir, "a%d.npy" % i) for i in range(nfiles)]
    a = np.load(big)
    smalls = [np.load(p) for p in paths]
    pool = ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 1))

    def save_loop():
        for p, x in zip(paths, smalls):
            np.save(p, x)

    results = {
        "save": median_time(reps, lambda: np.save(big, a)),
        "load": median_time(reps, lambda: np.load(big)),
        "mmap_sum": median_time(reps, lambda: np.load(big, mmap_mode="r").sum()),
        "load_loop": median_time(reps, lambda: [np.load(p) for p in paths]),
        "load_pool": median_time(reps, lambda: list(pool.map(np.load, paths))),
        "save_loop": median_time(reps, save_loop),
    }
    for name, secs in results.items():
        print(name, "%.6f" % secs)


if __name__ == "__main__":
    main()
