"""Element-wise expressions in one fused, parallel pass: kiln.evaluate against plain NumPy.

NumPy evaluates `2*a + 3*b*c - 1.5` one operator at a time, writing a full-size temporary
for each; kiln.evaluate compiles the text once into a single loop that reads a, b and c
once, keeps the intermediates in registers and runs on every core. Like numexpr.evaluate it
takes the arrays from the caller's variables (or local_dict=), wrapping them without a copy.

The script times three expressions, checks each result against NumPy's, then shows
  - out=: the result written in place into an existing array (no allocation at all), and
  - no copy on the way back: the result is a NumPy array whose .base is the kiln.Array
    that owns the memory kiln allocated (kiln.live_buffers() counts it until NumPy drops it).

    /usr/bin/python3 examples/python/fused_math.py [N_ELEMENTS]

N_ELEMENTS defaults to 10000000 (float64). kiln is the package in frontend/python (on
PYTHONPATH) over $KILN_LIBRARY. Exits 1 if a result differs from NumPy's.
"""

import sys

import numpy as np

import kiln
from timing import median_time, report

# kiln's text and the same computation in NumPy.
EXPRESSIONS = {
    "2*a + 3*b*c - 1.5": lambda a, b, c: 2 * a + 3 * b * c - 1.5,
    "sqrt(a*a + b*b)": lambda a, b, c: np.sqrt(a * a + b * b),
    "where(a > 0, a, 0.1*a)": lambda a, b, c: np.where(a > 0, a, 0.1 * a),
}


def check_close(what, got, want):
    # kiln's + - * / and sqrt are correctly rounded, but it may order or fuse operations
    # differently from NumPy: agreement to rounding, not bit for bit.
    if got.shape != want.shape or got.dtype != want.dtype or not np.allclose(got, want, rtol=1e-12, atol=1e-12):
        sys.exit(f"MISMATCH: {what}: {got.dtype}{got.shape} vs {want.dtype}{want.shape}, "
                 f"largest difference {np.max(np.abs(got - want)) if got.shape == want.shape else '-'}")


def main(n):
    rng = np.random.default_rng(0)
    a, b, c = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)
    print(f"{n} float64 elements, kiln budget {kiln.get_num_threads()} threads, {kiln.simd_isa()}")

    # The names in the text are this function's variables a, b and c.
    r = kiln.evaluate("2*a + 3*b*c - 1.5")
    check_close("2*a + 3*b*c - 1.5 (caller's variables)", r, 2 * a + 3 * b * c - 1.5)

    # Timed through local_dict: inside the lambda the caller's variables are the lambda's own.
    variables = {"a": a, "b": b, "c": c}
    for expr, numpy_version in EXPRESSIONS.items():
        check_close(expr, kiln.evaluate(expr, local_dict=variables), numpy_version(a, b, c))
        report(expr, median_time(lambda: numpy_version(a, b, c)),
               median_time(lambda: kiln.evaluate(expr, local_dict=variables)))

    # out=: kiln writes into `out` and returns it. NumPy's closest is a chain of in-place
    # ufuncs through one scratch array, a pass over memory per operator.
    out, scratch = np.empty(n), np.empty(n)
    address = out.ctypes.data

    def numpy_in_place():
        np.multiply(b, c, out=out)
        np.multiply(out, 3, out=out)
        np.multiply(a, 2, out=scratch)
        np.add(out, scratch, out=out)
        np.subtract(out, 1.5, out=out)

    def kiln_in_place():
        return kiln.evaluate("2*a + 3*b*c - 1.5", local_dict=variables, out=out)

    t_numpy = median_time(numpy_in_place)
    check_close("NumPy's in-place chain", out, 2 * a + 3 * b * c - 1.5)
    out[:] = np.nan  # so a result kiln did not write cannot pass for one
    t_kiln = median_time(kiln_in_place)
    if kiln_in_place() is not out or out.ctypes.data != address:
        sys.exit("MISMATCH: evaluate(out=) did not return `out` itself")
    check_close("2*a + 3*b*c - 1.5, out=", out, 2 * a + 3 * b * c - 1.5)
    report("2*a + 3*b*c - 1.5, in place (out=)", t_numpy, t_kiln)

    # No copy on the way back: the NumPy array views the memory kiln allocated.
    buffers_before = kiln.live_buffers()[0]
    r = kiln.evaluate("sqrt(a*a + b*b)")
    base = r.base
    if not isinstance(base, kiln.Array) or r.ctypes.data != base.__array_interface__["data"][0]:
        sys.exit(f"MISMATCH: the result's .base is {base!r}, not the kiln.Array over its memory")
    if kiln.live_buffers()[0] != buffers_before + 1:
        sys.exit("MISMATCH: the result is not one live kiln buffer")
    print(f"result: NumPy array, .base = {base!r}, same address, {kiln.live_buffers()[0] - buffers_before} kiln "
          "buffer alive")
    del r, base
    if kiln.live_buffers()[0] != buffers_before:
        sys.exit("MISMATCH: kiln's buffer outlived the NumPy array over it")
    print("freed with the NumPy array; all results match NumPy's")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000)
