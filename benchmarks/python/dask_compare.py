"""kiln.dask against plain Dask (NumPy per chunk) on the same distributed.LocalCluster in
one run: the element-wise `2*a + 3*b*c - 1.5` and the reduction `sum(a*b)` over float64
arrays of --gb GB each, made on the workers by kiln.dask.random (they never pass through
this process). Medians of --repeat runs, the two kinds alternating; also the per-task
overhead of the cluster (a graph of trivial tasks), for docs/dask.md's estimate.

    /usr/bin/python3 benchmarks/python/dask_compare.py --gb 4 --repeat 5

Needs KILN_LIBRARY (or an installed kiln) and PYTHONPATH=frontend/python from the source tree.
"""

import argparse
import logging
import os
import statistics
import time

import dask.array as da
import distributed
import numpy as np

import kiln
import kiln.dask as kd


def _drop(block):
    return np.zeros(1, block.dtype)


def timed(run, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=4.0, help="size of each input array, GB (default 4)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--workers", type=int, default=2, help="worker processes, 1 thread each (default 2)")
    p.add_argument("--chunk-mb", type=float, default=128.0, help="chunk size, MB (default 128, Dask's 'auto')")
    args = p.parse_args()

    n = int(args.gb * 2**30 / 8)
    chunk = int(args.chunk_mb * 2**20 / 8)
    cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=":0", memory_limit=0,
                                       silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    print(f"kiln {kiln.__version__}, simd {kiln.simd_isa()}, {os.cpu_count()} cores; LocalCluster of "
          f"{args.workers} worker processes x 1 thread; arrays of {n} float64 ({n * 8 / 1e9:.2f} GB) each, "
          f"chunks of {chunk * 8 / 2**20:.0f} MiB ({-(-n // chunk)} per array); median of {args.repeat}")

    a, b, c = (kd.random.uniform(seed, n, chunks=chunk) for seed in (1, 2, 3))
    a, b, c = client.persist([a, b, c])
    distributed.wait([a, b, c])

    def made_and_dropped(x):
        """Computes every block of x and drops it in the same task, so each run makes and
        writes the whole result but keeps none of it (no memory builds up, nothing is sent)."""
        client.compute(x.map_blocks(_drop, dtype=x.dtype, chunks=((1,) * x.numblocks[0],)), sync=True)

    kiln_expr = kd.evaluate("2*a + 3*b*c - 1.5", a=a, b=b, c=c)
    dask_expr = 2 * a + 3 * b * c - 1.5
    # The same values first: one block of each, and the sums.
    first_kiln, first_dask = client.compute([kiln_expr.blocks[0], dask_expr.blocks[0]], sync=True)
    assert np.allclose(first_kiln, first_dask, rtol=1e-15, atol=1e-15)
    kiln_sum, dask_sum = client.compute([kd.evaluate("sum(a*b)", a=a, b=b), (a * b).sum()], sync=True)
    assert abs(kiln_sum - dask_sum) <= 1e-9 * abs(dask_sum), (kiln_sum, dask_sum)

    results = {"kiln.dask": {"elementwise": [], "sum": []}, "plain dask": {"elementwise": [], "sum": []}}
    for _ in range(args.repeat):  # alternating, so that drift in the machine hits both alike
        results["kiln.dask"]["elementwise"] += timed(lambda: made_and_dropped(kd.evaluate("2*a + 3*b*c - 1.5", a=a,
                                                                                            b=b, c=c)), 1)
        results["plain dask"]["elementwise"] += timed(lambda: made_and_dropped(2 * a + 3 * b * c - 1.5), 1)
        results["kiln.dask"]["sum"] += timed(lambda: client.compute(kd.evaluate("sum(a*b)", a=a, b=b), sync=True), 1)
        results["plain dask"]["sum"] += timed(lambda: client.compute((a * b).sum(), sync=True), 1)

    moved = {"elementwise": 4 * n * 8, "sum": 2 * n * 8}  # bytes read and written
    print(f"{'what':34} {'median s':>9} {'min..max s':>15} {'GB/s':>7}")
    for case, text in (("elementwise", "2*a + 3*b*c - 1.5"), ("sum", "sum(a*b)")):
        for who in ("kiln.dask", "plain dask"):
            t = results[who][case]
            med = statistics.median(t)
            print(f"{who + ' ' + text:34} {med:9.3f} {min(t):7.3f}..{max(t):<7.3f} {moved[case] / med / 1e9:7.2f}")
        ratio = statistics.median(results["plain dask"][case]) / statistics.median(results["kiln.dask"][case])
        print(f"  {text}: kiln.dask is {ratio:.2f}x plain Dask")

    # The cluster's own cost per task: 2000 trivial tasks, timed end to end.
    trivial = da.ones(2000, chunks=1).map_blocks(lambda x: x, dtype=float)
    t = statistics.median(timed(lambda: client.compute(trivial.sum(), sync=True), 3))
    print(f"scheduler overhead: {t / 2000 * 1e3:.2f} ms per task (2000 trivial tasks + their sum's tree)")
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
