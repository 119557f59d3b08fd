"""kiln on a Dask cluster: a distributed.LocalCluster of worker processes on this machine,
the same code that runs on many machines once the Client points at their scheduler.

The job: x is a random array made block by block on the workers (kiln.dask.random, equal to
kiln.random's whole array for any chunks), standardized with `(x - mean(x)) / std(x)`
(kiln computes each block's partial statistics, Dask's tree reduction combines them),
written block by block into one .npy file (kiln.dask.to_npy), mapped back block by block
(kiln.dask.from_npy) and summed. Every step is checked against kiln on one machine, and the
element-wise step is timed against plain Dask (NumPy per chunk) on the same cluster.

    /usr/bin/python3 examples/python/dask_cluster.py [N_ELEMENTS] [WORKERS]

N_ELEMENTS (default 50000000) is x's size, WORKERS (default 2) the worker processes, one
thread each. kiln is the package in frontend/python (on PYTHONPATH) over $KILN_LIBRARY.
Exits 1 if a check fails.
"""

import logging
import os
import sys
import tempfile

import dask.array as da
import distributed
import numpy as np

import kiln
import kiln.dask as kd
from timing import median_time

SEED = 20261202


def _drop(block):
    return np.zeros(1, block.dtype)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000_000
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    chunks = max(1, n // 16)
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1",
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    try:
        x = client.persist(kd.random.normal(SEED, n, 2.0, 3.0, chunks=chunks))
        whole = kiln.random.normal(SEED, n, 2.0, 3.0)
        if not np.array_equal(client.compute(x, sync=True), whole):
            sys.exit("MISMATCH: the cluster's random array is not kiln.random's")

        z = kd.evaluate("(x - mean(x)) / std(x)", x=x)
        want = kiln.evaluate("(x - mean(x)) / std(x)", local_dict={"x": whole})
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "z.npy")
            kd.to_npy(path, z)
            back = kd.from_npy(path, chunks=chunks)
            got = client.compute(back, sync=True)
            total = client.compute(kd.evaluate("sum(z * z)", z=back), sync=True)
        if not np.allclose(got, want, rtol=1e-12, atol=1e-12):
            sys.exit("MISMATCH: the standardized array differs from kiln's on one machine")
        print(f"{n} elements in {len(x.chunks[0])} blocks over {workers} workers: standardized, written, "
              f"mapped back; sum(z*z) = {total:.6f} (n = {n})")
        if abs(total - n) > 1e-6 * n:
            sys.exit("MISMATCH: sum(z*z) of a standardized array is not its size")

        y = client.persist(kd.random.uniform(SEED + 1, n, chunks=chunks))
        distributed.wait([x, y])

        def run(expr):  # every block made, then dropped in the same task (nothing kept)
            client.compute(expr.map_blocks(_drop, dtype=expr.dtype, chunks=((1,) * expr.numblocks[0],)), sync=True)

        t_dask = median_time(lambda: run(2 * x + 3 * y * x - 1.5), 3)
        t_kiln = median_time(lambda: run(kd.evaluate("2*x + 3*y*x - 1.5", x=x, y=y)), 3)
        print(f"2*x + 3*y*x - 1.5 on the cluster: plain Dask {t_dask * 1e3:.1f} ms, kiln.dask {t_kiln * 1e3:.1f} ms, "
              f"plain/kiln {t_dask / t_kiln:.2f}x")
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
