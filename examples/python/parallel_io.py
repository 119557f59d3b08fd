"""Saving and loading several .npy files at once: kiln.save_many / kiln.load_many against
np.save / np.load in a loop.

kiln writes and reads the files concurrently (their I/O overlaps on threads of kiln's own)
and its files are ordinary .npy files: NumPy reads what kiln wrote and kiln reads what NumPy
wrote, which the script checks both ways, along with kiln.load(path, mmap=True), a
copy-on-write mapping (writing to the array never changes the file). Everything lives in a
temporary folder that is removed at the end. Loads read from the page cache here, since the
files were just written: the timings show the parallel copy, not the disk.

    /usr/bin/python3 examples/python/parallel_io.py [N_ELEMENTS [N_FILES]]

N_ELEMENTS (default 4000000) is the size of each file's array, N_FILES (default 8) how many
files. kiln is the package in frontend/python (on PYTHONPATH) over $KILN_LIBRARY. Exits 1 if
any array differs.
"""

import os
import sys
import tempfile

import numpy as np

import kiln
from timing import median_time, report


def check_same(what, got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g.dtype != w.dtype or g.shape != w.shape or not np.array_equal(g, w):
            sys.exit(f"MISMATCH: {what}: file {i}: {g.dtype}{g.shape} vs {w.dtype}{w.shape}")
    if len(got) != len(want):
        sys.exit(f"MISMATCH: {what}: {len(got)} arrays, expected {len(want)}")


def main(n, n_files):
    rng = np.random.default_rng(0)
    # A mix of kiln's dtypes, and one strided view (both writers take any strides).
    kinds = [lambda: rng.random(n), lambda: rng.integers(-1000, 1000, n, dtype=np.int32),
             lambda: rng.random(n, dtype=np.float32), lambda: rng.random(2 * n)[::2],
             lambda: rng.integers(0, 2**40, n, dtype=np.int64), lambda: rng.random(n) < 0.5]
    arrays = [kinds[i % len(kinds)]() for i in range(n_files)]
    megabytes = sum(a.nbytes for a in arrays) / 1e6
    print(f"{n_files} files of {n} elements ({megabytes:.0f} MB in all), kiln budget {kiln.get_num_threads()} threads")

    with tempfile.TemporaryDirectory(prefix="kiln-parallel-io-") as folder:
        np_paths = [os.path.join(folder, f"numpy-{i}.npy") for i in range(n_files)]
        kiln_paths = [os.path.join(folder, f"kiln-{i}.npy") for i in range(n_files)]

        def numpy_save():
            for path, a in zip(np_paths, arrays):
                np.save(path, a)

        report("save", median_time(numpy_save), median_time(lambda: kiln.save_many(kiln_paths, arrays)))
        report("load", median_time(lambda: [np.load(p) for p in np_paths]),
               median_time(lambda: kiln.load_many(kiln_paths)))
        # Mapping costs almost nothing either way; touching every page (sum) is the real cost.
        report("load mmap + sum", median_time(lambda: [np.load(p, mmap_mode="c").sum() for p in np_paths]),
               median_time(lambda: [kiln.load(p, mmap=True).sum() for p in kiln_paths]))

        # The files are interchangeable: each reader gets back the arrays either writer wrote.
        check_same("kiln.load_many of kiln's files", kiln.load_many(kiln_paths), arrays)
        check_same("kiln.load_many of NumPy's files", kiln.load_many(np_paths), arrays)
        check_same("np.load of kiln's files", [np.load(p) for p in kiln_paths], arrays)
        check_same("kiln.load(mmap=True)", [kiln.load(p, mmap=True) for p in kiln_paths], arrays)
        check_same("kiln.load_many(mmap=True)", kiln.load_many(kiln_paths, mmap=True), arrays)

        # Copy-on-write: the mapped array can be written, the file stays as it was.
        mapped = kiln.load(kiln_paths[0], mmap=True)
        mapped[:] = 0
        check_same("the file under a written mapping", [kiln.load(kiln_paths[0])], arrays[:1])
        del mapped
    print("all arrays match")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4_000_000, int(sys.argv[2]) if len(sys.argv) > 2 else 8)
