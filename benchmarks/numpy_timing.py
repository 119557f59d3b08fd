"""Timing shared by the NumPy sides of `kiln bench` (io_numpy.py, create_numpy.py)."""
import statistics
import time


def median_time(reps, f):
    """Median seconds of `reps` calls of f, after one warm-up call."""
    f()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
