"""What the examples share: a median of repeated timings and one line comparing NumPy with kiln."""

import statistics
import time


def median_time(fn, repeat=5):
    """The median wall time of `repeat` calls of fn(), in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(what, t_numpy, t_kiln, width=34):
    print(f"{what:<{width}} NumPy {t_numpy * 1e3:9.2f} ms   kiln {t_kiln * 1e3:9.2f} ms   "
          f"NumPy/kiln {t_numpy / t_kiln:5.2f}x")
