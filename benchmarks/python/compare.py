"""kiln.evaluate against plain NumPy and numexpr, on the expressions of kiln's performance suite.

What it measures: the ten expressions of `kiln bench --suite` (kCases in
benchmarks/reference.hpp) over the same NumPy arrays, each evaluated as a user would call it
(the result newly allocated by each library):

    NumPy:    the expression written with NumPy operators and functions (one temporary per
              operation; NumPy's element-wise operations run on one thread)
    numexpr:  numexpr.evaluate(text, local_dict=...) at 1 thread and at all threads
    kiln:     kiln.evaluate(text, local_dict=...) at 1 thread and at all threads

at N = 10^4, 10^6 and 10^7 elements, in float64 and float32. "All threads" is os.cpu_count(),
set with kiln.set_num_threads(k) and numexpr.set_num_threads(k), the same k for both. Inputs: a
uniform in (-1, 1), b and c uniform in (0.5, 1.5). The strided case passes the view
s = a2[::2] of an array a2 of 2N elements; the broadcast case adds a row of 1000 to a matrix
of N/1000 x 1000; the transposed case adds t = (a 1000 x N/1000 array).T to an N/1000 x 1000
matrix q.

Every figure is the median of --reps repetitions (default 5). Inside a repetition the columns
are measured in turn (NumPy, numexpr 1T, kiln 1T, then numexpr and kiln at all threads), so
machine noise hits every column alike. Each measurement is one untimed call and then a timed
loop of calls, as many as fill about --target-ms (at least one), divided by their count; the
loop counts are fixed per column by a few calibration calls. The garbage collector is off while
timing. Each kiln result (and numexpr's) is checked against NumPy's with np.allclose
(float64: rtol 1e-5 for the transcendental rows, 1e-10 for the rest; float32: 1e-3 and 1e-4;
for sum(a*b) the tolerance scales with sum(|a*b|), since the terms cancel); a mismatch is
printed loudly (stderr) and the exit status is 1. A row marked * is one where numexpr
returned float64 for float32 inputs: it takes float constants (1.5, 0.1) as double and
computes in double, while NumPy and kiln stay in float32.

A last row is the per-call overhead: each library's median time at N = 1 for
`2*a + 3*b*c - 1.5` (float64), with kiln's speed-up over numexpr.

Speed-ups are the other library's time over kiln's: above 1, kiln is faster. The machine is
printed first. Build machines are shared: compare ratios from one run, not absolute times
across runs.

How to run it (from the repository root, after building build/libkiln.so):

    KILN_LIBRARY=build/libkiln.so PYTHONPATH=frontend/python /usr/bin/python3 benchmarks/python/compare.py

Options: --sizes 1e4,1e6,1e7  --dtype float64|float32|both (default both)  --reps 5
         --target-ms 20  --threads K (what "all" means; default os.cpu_count())
         --json (one JSON document on stdout instead of the table, with every repetition's time)
"""

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

try:
    import numexpr
except ImportError:  # pragma: no cover - the comparison needs it
    sys.exit("compare.py: numexpr is not installed (Debian: apt-get install python3-numexpr)")

import kiln

# (label, the expression text given to kiln and numexpr, NumPy's version, inputs, transcendental)
CASES = [
    ("a*b + c", "a*b + c", lambda v: v["a"] * v["b"] + v["c"], "abc", False),
    ("2*a + 3*b*c - 1.5", "2*a + 3*b*c - 1.5", lambda v: 2 * v["a"] + 3 * v["b"] * v["c"] - 1.5, "abc", False),
    ("sqrt(a*a + b*b)", "sqrt(a*a + b*b)", lambda v: np.sqrt(v["a"] * v["a"] + v["b"] * v["b"]), "ab", False),
    ("where(a > 0, a, 0.1*a)", "where(a > 0, a, 0.1*a)", lambda v: np.where(v["a"] > 0, v["a"], 0.1 * v["a"]), "a",
     False),
    ("sin(a)**2 + cos(b)**2", "sin(a)**2 + cos(b)**2", lambda v: np.sin(v["a"]) ** 2 + np.cos(v["b"]) ** 2, "ab",
     True),
    ("exp(-a) * log1p(b)", "exp(-a) * log1p(b)", lambda v: np.exp(-v["a"]) * np.log1p(v["b"]), "ab", True),
    ("sum(a*b)", "sum(a*b)", lambda v: np.sum(v["a"] * v["b"]), "ab", False),
    ("a[::2]*2 + b", "s*2 + b", lambda v: v["s"] * 2 + v["b"], "sb", False),
    ("m + row (N/1000 x 1000)", "m + row", lambda v: v["m"] + v["row"], ("m", "row"), False),
    ("a.T + b (N/1000 x 1000)", "t + q", lambda v: v["t"] + v["q"], ("t", "q"), False),
]

OVERHEAD_EXPR = "2*a + 3*b*c - 1.5"
COLUMNS = ("numpy", "numexpr_1T", "kiln_1T", "numexpr_allT", "kiln_allT")


def machine_info(all_threads):
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "all_threads": all_threads,
        "kiln_simd_isa": kiln.simd_isa(),
        "kiln_version": kiln.__version__,
        "kiln_library": kiln.LIBRARY,
        "numpy": np.__version__,
        "numexpr": numexpr.__version__,
        "numexpr_vml": bool(getattr(numexpr, "use_vml", False)),
        "python": platform.python_version(),
    }


def make_inputs(n, dtype, seed=20261201):
    """The arrays of every case at size n, in dtype (drawn in float64, then cast)."""
    rng = np.random.default_rng(seed + n)
    a = rng.uniform(-1.0, 1.0, n)
    b = rng.uniform(0.5, 1.5, n)
    c = rng.uniform(0.5, 1.5, n)
    a2 = rng.uniform(-1.0, 1.0, 2 * n)
    rows = max(1, n // 1000)
    m = rng.uniform(-1.0, 1.0, (rows, 1000))
    row = rng.uniform(0.5, 1.5, 1000)
    columns = rng.uniform(-1.0, 1.0, (1000, rows))
    q = rng.uniform(0.5, 1.5, (rows, 1000))
    v = {k: x.astype(dtype) for k, x in (("a", a), ("b", b), ("c", c), ("a2", a2), ("m", m), ("row", row),
                                         ("columns", columns), ("q", q))}
    v["s"] = v["a2"][::2]  # a view: both kiln and numexpr take it without a copy
    v["t"] = v["columns"].T  # a view too (Fortran order)
    return v


def set_threads(k):
    kiln.set_num_threads(k)
    numexpr.set_num_threads(k)


def loop_time(f, loops):
    """Seconds per call of `loops` calls of f (one untimed call first), the collector off."""
    f()
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(loops):
            f()
        t = time.perf_counter() - t0
    finally:
        if gc_was_on:
            gc.enable()
    return t / loops


def loops_for(f, target_s):
    """How many calls of f fill about target_s (from the fastest of a few calibration calls)."""
    best = math.inf
    spent = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        f()
        t = time.perf_counter() - t0
        best = min(best, t)
        spent += t
        if spent > target_s:
            break
    return max(1, min(1_000_000, int(math.ceil(target_s / max(best, 1e-9)))))


def measure(funcs, reps, all_threads, target_s):
    """(median seconds per call of each column, loop counts, every repetition's seconds), the
    columns interleaved in every repetition.

    funcs: column -> callable (or None for a column the library cannot do). The 1-thread
    columns run with both libraries at 1 thread, the others at all_threads.
    """
    threads_of = {"numpy": 1, "numexpr_1T": 1, "kiln_1T": 1, "numexpr_allT": all_threads, "kiln_allT": all_threads}
    loops = {}
    for col in COLUMNS:
        if funcs.get(col) is not None:
            set_threads(threads_of[col])
            loops[col] = loops_for(funcs[col], target_s)
    times = {col: [] for col in loops}
    for _ in range(reps):
        current = None
        for col in COLUMNS:
            if col not in loops:
                continue
            if threads_of[col] != current:
                set_threads(threads_of[col])
                current = threads_of[col]
            times[col].append(loop_time(funcs[col], loops[col]))
    set_threads(all_threads)
    medians = {col: (statistics.median(times[col]) if col in times else None) for col in COLUMNS}
    return medians, loops, times


def check(label, ref, got, dtype, transcendental, inputs):
    """None if `got` agrees with NumPy's `ref`, else a description of the difference."""
    got = np.asarray(got)
    ref = np.asarray(ref)
    if got.shape != ref.shape:
        return f"shape {got.shape} vs NumPy's {ref.shape}"
    if dtype == np.float64:
        rtol, atol = (1e-5, 1e-8) if transcendental else (1e-10, 1e-12)
    else:
        rtol, atol = (1e-3, 1e-5) if transcendental else (1e-4, 1e-5)
    if label.startswith("sum("):
        # The terms cancel (a is centred on 0): the rounding error scales with sum(|a*b|),
        # not with the sum itself, and kiln and NumPy add in different orders.
        atol = rtol * float(np.sum(np.abs(inputs["a"].astype(np.float64) * inputs["b"].astype(np.float64))))
    g = got.astype(np.float64)
    r = ref.astype(np.float64)
    if np.allclose(g, r, rtol=rtol, atol=atol):
        return None
    diff = np.abs(g - r)
    worst = int(np.argmax(diff)) if diff.ndim else 0
    return (f"max |diff| {float(diff.max()):.3g} (rtol {rtol:g}, atol {atol:.3g}); at flat index {worst}: "
            f"{float(g.flat[worst])!r} vs NumPy's {float(r.flat[worst])!r}")


def fmt_time(s):
    if s is None:
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.2f} us" if s < 1e-5 else f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.3f} ms"
    return f"{s:.3f} s"


def fmt_ratio(num, den):
    if num is None or den is None or den <= 0:
        return "n/a"
    return f"{num / den:.2f}x"


def ratio(num, den):
    return None if num is None or den is None or den <= 0 else num / den


HEADER_FMT = "{:<8} {:<25} {:>9} {:>11} {:>11} {:>11} {:>11} {:>11} {:>8} {:>8} {:>8}"


def header_lines(k):
    top = HEADER_FMT.format("dtype", "expression", "N", "numpy", "numexpr", "kiln", "numexpr", "kiln",
                            "k/ne", "k/ne", "k/np")
    bottom = HEADER_FMT.format("", "", "", "1T", "1T", "1T", f"{k}T", f"{k}T", "1T", f"{k}T", f"{k}T")
    return [top, bottom, "-" * len(top)]


def row_line(r):
    t = r["seconds"]
    flags = ""
    if r.get("numexpr_dtype") and r["numexpr_dtype"] != r["dtype"]:
        flags += " *"
    if r["mismatch"]:
        flags += " !! MISMATCH"
    return HEADER_FMT.format(r["dtype"], r["expression"], r["n"], fmt_time(t["numpy"]), fmt_time(t["numexpr_1T"]),
                             fmt_time(t["kiln_1T"]), fmt_time(t["numexpr_allT"]), fmt_time(t["kiln_allT"]),
                             fmt_ratio(t["numexpr_1T"], t["kiln_1T"]), fmt_ratio(t["numexpr_allT"], t["kiln_allT"]),
                             fmt_ratio(t["numpy"], t["kiln_allT"])) + flags


def run_case(label, text, numpy_f, names, transcendental, v, dtype, reps, all_threads, target_s):
    local = {name: v[name] for name in names}
    np_f = lambda: numpy_f(local)  # noqa: E731
    ne_f = lambda: numexpr.evaluate(text, local_dict=local)  # noqa: E731
    k_f = lambda: kiln.evaluate(text, local_dict=local)  # noqa: E731

    ref = np_f()
    mismatch = []

    def first_call(who, f, ref):
        """f's result dtype, checked against NumPy's; None if it raised (its columns are n/a)."""
        try:
            res = f()
        except Exception as e:
            if who == "kiln":
                mismatch.append(f"kiln raised {type(e).__name__}: {e}")
            else:
                print(f"note: numexpr cannot evaluate {label}: {type(e).__name__}: {e}", file=sys.stderr)
            return None
        problem = check(label, ref, res, dtype, transcendental, v)
        if problem:
            mismatch.append(f"{who}: {problem}")
        return str(np.asarray(res).dtype)

    numexpr_dtype = first_call("numexpr", ne_f, ref)
    if numexpr_dtype is None:
        ne_f = None
    kiln_dtype = first_call("kiln", k_f, ref)
    if kiln_dtype is None:
        k_f = None
    del ref
    funcs = {"numpy": np_f, "numexpr_1T": ne_f, "numexpr_allT": ne_f, "kiln_1T": k_f, "kiln_allT": k_f}
    seconds, loops, samples = measure(funcs, reps, all_threads, target_s)
    n = v[names[0]].size
    return {"dtype": np.dtype(dtype).name, "expression": label, "text": text, "n": int(n), "seconds": seconds,
            "samples": samples, "loops": loops, "numexpr_dtype": numexpr_dtype, "kiln_dtype": kiln_dtype,
            "speedup_vs_numexpr_1T": ratio(seconds["numexpr_1T"], seconds["kiln_1T"]),
            "speedup_vs_numexpr_allT": ratio(seconds["numexpr_allT"], seconds["kiln_allT"]),
            "speedup_vs_numpy_allT": ratio(seconds["numpy"], seconds["kiln_allT"]),
            "mismatch": mismatch}


def overhead_row(reps, all_threads, target_s):
    v = make_inputs(1, np.float64)
    local = {"a": v["a"], "b": v["b"], "c": v["c"]}
    np_f = lambda: 2 * local["a"] + 3 * local["b"] * local["c"] - 1.5  # noqa: E731
    ne_f = lambda: numexpr.evaluate(OVERHEAD_EXPR, local_dict=local)  # noqa: E731
    k_f = lambda: kiln.evaluate(OVERHEAD_EXPR, local_dict=local)  # noqa: E731
    mismatch = []
    problem = check(OVERHEAD_EXPR, np_f(), k_f(), np.float64, False, v)
    if problem:
        mismatch.append("kiln: " + problem)
    funcs = {"numpy": np_f, "numexpr_1T": ne_f, "numexpr_allT": ne_f, "kiln_1T": k_f, "kiln_allT": k_f}
    seconds, loops, samples = measure(funcs, reps, all_threads, target_s)
    return {"dtype": "float64", "expression": OVERHEAD_EXPR, "n": 1, "seconds": seconds, "samples": samples,
            "loops": loops,
            "numexpr_over_kiln_1T": ratio(seconds["numexpr_1T"], seconds["kiln_1T"]),
            "numexpr_over_kiln_allT": ratio(seconds["numexpr_allT"], seconds["kiln_allT"]),
            "mismatch": mismatch}


def parse_sizes(text):
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if part:
            n = int(float(part))
            if n < 1:
                raise argparse.ArgumentTypeError(f"size {part!r} is not positive")
            sizes.append(n)
    if not sizes:
        raise argparse.ArgumentTypeError("no sizes")
    return sizes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=parse_sizes, default=[10**4, 10**6, 10**7],
                   help="comma-separated element counts (default 1e4,1e6,1e7)")
    p.add_argument("--dtype", choices=("float64", "float32", "both"), default="both")
    p.add_argument("--reps", type=int, default=5, help="repetitions per figure; the median is printed (default 5)")
    p.add_argument("--target-ms", type=float, default=20.0,
                   help="each timed loop repeats the call to fill about this long (default 20)")
    p.add_argument("--threads", type=int, default=0, help="'all threads' (default os.cpu_count())")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error("--reps must be at least 1")

    all_threads = args.threads or os.cpu_count() or 1
    target_s = args.target_ms / 1e3
    dtypes = {"float64": [np.float64], "float32": [np.float32], "both": [np.float64, np.float32]}[args.dtype]
    info = machine_info(all_threads)
    started = time.perf_counter()

    def out(line=""):
        if not args.json:
            print(line, flush=True)

    out(f"machine: {info['cpu']}, {info['cores']} cores (os.cpu_count()); kiln {info['kiln_version']} "
        f"simd {info['kiln_simd_isa']}; numpy {info['numpy']}; numexpr {info['numexpr']}"
        f"{' (VML)' if info['numexpr_vml'] else ''}; python {info['python']}")
    out(f"medians of {args.reps}; 1T = 1 thread, {all_threads}T = all threads (kiln and numexpr set alike); "
        f"NumPy runs on 1 thread; k/ne, k/np = numexpr's or NumPy's time over kiln's (above 1: kiln faster)")
    out()
    for line in header_lines(all_threads):
        out(line)

    rows = []
    for dtype in dtypes:
        for n in args.sizes:
            v = make_inputs(n, dtype)
            for label, text, numpy_f, names, transcendental in CASES:
                r = run_case(label, text, numpy_f, tuple(names), transcendental, v, dtype, args.reps, all_threads,
                             target_s)
                rows.append(r)
                out(row_line(r))
            del v
            gc.collect()
        out()

    ov = overhead_row(args.reps, all_threads, target_s)
    t = ov["seconds"]
    out(f"per-call overhead, {OVERHEAD_EXPR} at N = 1 (float64), median of {args.reps}:")
    out(f"  numpy {fmt_time(t['numpy'])}   numexpr 1T {fmt_time(t['numexpr_1T'])}   kiln 1T {fmt_time(t['kiln_1T'])}"
        f"   numexpr {all_threads}T {fmt_time(t['numexpr_allT'])}   kiln {all_threads}T {fmt_time(t['kiln_allT'])}")
    out(f"  numexpr/kiln: {fmt_ratio(t['numexpr_1T'], t['kiln_1T'])} at 1T, "
        f"{fmt_ratio(t['numexpr_allT'], t['kiln_allT'])} at {all_threads}T (above 1: kiln's call is cheaper)")

    upcast = sorted({r["expression"] for r in rows if r["numexpr_dtype"] and r["numexpr_dtype"] != r["dtype"]})
    if upcast:
        out()
        out("* numexpr returned float64 for float32 inputs (it treats float constants such as 1.5 and 0.1 as double "
            "and computes in double): " + "; ".join(upcast))

    elapsed = time.perf_counter() - started
    bad = [r for r in rows + [ov] if r["mismatch"]]
    if bad:
        lines = ["", "!" * 78, "!! MISMATCH: results that disagree with NumPy's:"]
        for r in bad:
            for m in r["mismatch"]:
                lines.append(f"!!   {r['dtype']} {r['expression']} N={r['n']}: {m}")
        lines.append("!" * 78)
        print("\n".join(lines), file=sys.stderr, flush=True)
    out()
    out(f"took {elapsed:.0f} s")

    if args.json:
        json.dump({"machine": info, "reps": args.reps, "sizes": args.sizes,
                   "dtypes": [np.dtype(d).name for d in dtypes],
                   "all_threads": all_threads,
                   "unit": "seconds per call", "rows": rows, "overhead": ov, "elapsed_s": elapsed,
                   "ok": not bad}, sys.stdout, indent=1)
        print()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
