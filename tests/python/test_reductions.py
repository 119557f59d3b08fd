"""kiln's reductions against NumPy 1.24, through the C ABI.

Covers sum, prod, mean, std, var, min, max, any, all, argmin and argmax:

1. every reduction x every dtype x axis (None, 0, 1, -1, (0, 1), (0, 2), (1, 2)) x keepdims
   on a (5, 6, 7) operand that is C-contiguous, a transposed view or a strided, reversed view
   (kiln wraps NumPy's memory zero-copy with byte strides, so views go in as they are);
2. sizes on both sides of kiln's internal block and chunk boundaries, 1-D and 2-D;
3. NaN and inf propagation, argmin/argmax returning the first NaN and the first of ties;
4. reductions nested in expressions, compared with NumPy evaluating the same text;
5. every SIMD instruction set, and bit-identical results for 1, 2 and 7 threads;
6. programs through kiln_eval_many (result names, statement results, errors);
7. the errors: bad or repeated axes, empty extents of min/max/argmin/argmax, keepdims on 0-d
   operands, parse-level mistakes.

dtype and shape must equal NumPy's exactly. Integer, bool, min/max/any/all/argmin/argmax
results must equal NumPy's exactly. Float sums, products, means, variances and standard
deviations are summed in another order than NumPy's (blocked/pairwise), so they are compared
within a relative tolerance scaled by what the result is made of: sum(|x|) for sums, mean(|x|)
for means, the result itself for var, std and prod. float32 operands are compared with NumPy
evaluating the same reduction on a float64 copy (NumPy's own float32 accumulation can be
further from the truth than kiln is); their dtype and shape still come from NumPy's float32
result. Mixed-dtype expressions are left out on purpose: kiln treats a reduction's result as
a strong 0-d array, NumPy 1.24 treats it value-based.

Reuses the ctypes layer and helpers of test_numpy_differential.py. Run from the repository
root with Debian's interpreter (numpy 1.24, pytest):

    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python/test_reductions.py

The library is $KILN_LIBRARY, else build/libkiln.so under the repository root.
"""

import ctypes
import os
import re
import sys
import zlib

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_numpy_differential as nd  # noqa: E402  (the ctypes layer, data and comparisons)

np = nd.np
lib = nd.lib

# NumPy's own warnings (degrees of freedom <= 0, mean of an empty slice) are expected noise.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

B, I32, I64, F32, F64 = (np.dtype(t) for t in (np.bool_, np.int32, np.int64, np.float32, np.float64))
ALL = [B, I32, I64, F32, F64]

lib.kiln_set_num_threads.restype = ctypes.c_int
lib.kiln_set_num_threads.argtypes = [ctypes.c_int]
lib.kiln_get_num_threads.restype = ctypes.c_int
lib.kiln_get_num_threads.argtypes = []
lib.kiln_eval_many.restype = ctypes.c_int
lib.kiln_eval_many.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_char_p),
                               ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t,
                               ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_void_p)]

REDUCTIONS = ["sum", "prod", "mean", "std", "var", "min", "max", "any", "all", "argmin", "argmax"]
EXACT = {"min", "max", "any", "all", "argmin", "argmax"}  # no rounding: equal to NumPy, bit for bit
ONE_AXIS = {"argmin", "argmax"}  # one axis or None, never a tuple

NUMPY_NS = dict(nd.NUMPY_NS, sum=np.sum, prod=np.prod, mean=np.mean, std=np.std, var=np.var, min=np.amin,
                max=np.amax, any=np.any, all=np.all, argmin=np.argmin, argmax=np.argmax)


def numpy_eval(expr, **arrays):
    with np.errstate(all="ignore"):
        return np.asarray(eval(expr, {"__builtins__": {}}, {**NUMPY_NS, **arrays}))  # noqa: S307 - our own texts


def call_text(func, axis="default", keepdims=False, ddof=None, operand="x"):
    """The call as text, in the spellings users write: `sum(x)`, `sum(x, 1)`,
    `sum(x, axis=(0, 2), keepdims=True)`, `var(x, ddof=1)`."""
    args = [operand]
    if axis != "default":
        if isinstance(axis, int) and not keepdims and ddof is None:
            args.append(str(axis))  # positional
        else:
            args.append(f"axis={axis!r}")
    if keepdims:
        args.append("keepdims=True")
    if ddof is not None:
        args.append(f"ddof={ddof}")
    return f"{func}({', '.join(args)})"


# --------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------

RTOL = {F64: 1e-12, F32: 1e-5}


def _n_reduced(x, axis):
    if axis is None:
        return x.size
    axes = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([x.shape[a] for a in axes], dtype=np.int64))


def assert_exact(got, want, where, zero_sign=True):
    """dtype, shape and every value equal; NaN where NumPy has NaN; the sign of zeros too
    unless zero_sign is False (min/max of 0.0 and -0.0 may pick either)."""
    assert got.dtype == want.dtype, f"{where}: dtype {got.dtype}, NumPy {want.dtype}"
    assert got.shape == want.shape, f"{where}: shape {got.shape}, NumPy {want.shape}"
    if got.dtype.kind == "f":
        bad = (got != want) & ~(np.isnan(got) & np.isnan(want))
        if zero_sign:
            bad |= (got == 0) & (want == 0) & (np.signbit(got) != np.signbit(want))
    else:
        bad = got != want
    assert not bad.any(), nd._report(where, got, want, bad)


def assert_close(got, want, ref, tol, where):
    """dtype and shape as NumPy's `want`; values within `tol` of `ref` (a more exact
    reference of the same shape); non-finite values of `want` exactly (NaN for NaN)."""
    assert got.dtype == want.dtype, f"{where}: dtype {got.dtype}, NumPy {want.dtype}"
    assert got.shape == want.shape, f"{where}: shape {got.shape}, NumPy {want.shape}"
    g = got.astype(np.float64)
    w = np.asarray(want, np.float64)
    r = np.asarray(ref, np.float64)
    tol = np.broadcast_to(np.asarray(tol, np.float64), g.shape)
    special = ~np.isfinite(w)
    with np.errstate(all="ignore"):
        bad = np.where(special, (g != w) & ~(np.isnan(g) & np.isnan(w)),
                       ~np.isfinite(g) | ~(np.abs(g - r) <= tol))
    assert not bad.any(), nd._report(where + " (within tolerance)", got, np.asarray(ref).astype(got.dtype), bad)


def check_reduction(got, x, func, axis="default", keepdims=False, ddof=None, where=""):
    """got (kiln) against NumPy's func(x, axis=..., keepdims=..., ddof=...)."""
    kw = {} if axis == "default" else {"axis": axis}
    if keepdims:
        kw["keepdims"] = True
    if ddof is not None:
        kw["ddof"] = ddof
    np_func = NUMPY_NS[func]
    with np.errstate(all="ignore"):
        want = np.asarray(np_func(x, **kw))
        if func in EXACT or want.dtype.kind != "f":
            assert_exact(got, want, where, zero_sign=func not in ("min", "max"))
            return
        x64 = x.astype(np.float64)
        ref = np.asarray(np_func(x64, **kw)) if x.dtype == F32 else want
        ax = kw.get("axis")
        rtol = RTOL[want.dtype]
        if func == "sum":
            tol = rtol * np.sum(np.abs(x64), axis=ax, keepdims=keepdims)
        elif func == "mean":
            tol = rtol * np.mean(np.abs(x64), axis=ax, keepdims=keepdims)
        elif func == "prod":
            # Rounding errors of a product are relative and grow like sqrt(n) (randomly) to n (at
            # worst): allow 8 sqrt(n) units of roundoff, plus an absolute floor for underflow.
            n = _n_reduced(x, ax)
            eps = float(np.finfo(want.dtype).eps)
            tol = (rtol + 8 * np.sqrt(n) * eps) * np.abs(ref) + float(np.finfo(want.dtype).tiny)
        else:  # var, std: two-pass, relative to the result itself
            tol = rtol * np.abs(ref) + float(np.finfo(want.dtype).tiny)
    assert_close(got, want, ref, tol, where)


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

def data(dtype, shape, seed, func="sum", kind=None):
    """A fresh C-contiguous array. Integers and bools get nd.make_data's edge values (int
    min/max: sums and products wrap, exactly like NumPy's int64 accumulation); floats get
    values in [-3, 3] (no inf/nan, so tolerances apply), and for prod magnitudes in
    [0.995, 1.005] with random signs, so long products neither overflow nor underflow."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return nd.make_data(dtype, shape, seed, kind or "edges")
    v = nd.make_data(F64, shape, seed, kind or "small")
    if func == "prod":
        v = np.asarray(np.sign(v) * (0.995 + np.abs(v) / 300))
    return v.astype(dtype)


def layout3(name, dtype, seed, func):
    """A (5, 6, 7) operand: C-contiguous, a transposed view, or a strided reversed view."""
    if name == "C":
        return data(dtype, (5, 6, 7), seed, func)
    if name == "T":
        return data(dtype, (7, 6, 5), seed, func).T
    return data(dtype, (10, 6, 7), seed, func)[::2, ::-1]


# --------------------------------------------------------------------------------------
# 1. Every reduction x dtype x axis x keepdims x layout
# --------------------------------------------------------------------------------------

AXES = [None, 0, 1, -1, (0, 1), (0, 2), (1, 2)]


def _matrix():
    params = []
    for func in REDUCTIONS:
        for dtype in ALL:
            for axis in AXES:
                if func in ONE_AXIS and isinstance(axis, tuple):
                    continue
                for keepdims in (False, True):
                    for layout in ("C", "T", "strided"):
                        params.append(pytest.param(func, dtype, axis, keepdims, layout,
                                                   id=f"{func}-{dtype.name}-axis{axis}-keep{keepdims}-{layout}"))
    return params


@pytest.mark.parametrize("func,dtype,axis,keepdims,layout", _matrix())
def test_reduction_matches_numpy(func, dtype, axis, keepdims, layout):
    seed = zlib.crc32(f"{func}/{dtype}/{axis}/{layout}".encode()) & 0xFFFF
    x = layout3(layout, dtype, seed, func)
    assert x.shape == (5, 6, 7)
    text = call_text(func, axis if (axis is not None or keepdims) else "default", keepdims)
    got = nd.kiln_eval(text, x=x)
    check_reduction(got, x, func, axis, keepdims, where=f"{text} [{dtype.name}, {layout}]")


@pytest.mark.parametrize("func", ["var", "std"])
@pytest.mark.parametrize("dtype", [I32, F32, F64], ids=str)
@pytest.mark.parametrize("axis,ddof", [("default", 1), (0, 2), ((0, 2), 1), (-1, 0), (1, 6), (1, 9), (2, -1)])
def test_ddof_matches_numpy(func, dtype, axis, ddof):
    # ddof=6 on an extent of 6 divides by zero (inf), 9 clamps to zero like NumPy.
    x = layout3("T", dtype, 5 + (ddof or 0), func)
    text = call_text(func, axis, ddof=ddof)
    check_reduction(nd.kiln_eval(text, x=x), x, func, axis, ddof=ddof, where=f"{text} [{dtype.name}]")


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("func", REDUCTIONS)
def test_zero_d_and_one_element_operands(func, dtype):
    s = data(dtype, (), 3, func)
    check_reduction(nd.kiln_eval(f"{func}(s)", s=s), s, func, where=f"{func}(0-d {dtype.name})")
    one = data(dtype, (1, 1), 4, func)
    for axis in (None, 0, 1):
        text = call_text(func, axis, keepdims=True)
        check_reduction(nd.kiln_eval(text, x=one), one, func, axis, True, where=f"{text} [(1, 1) {dtype.name}]")


def test_variance_of_offset_data_is_two_pass_accurate():
    # Values 1e6 + noise: a one-pass sum(x**2) - sum(x)**2/n formula would lose every digit.
    x = 1e6 + nd.make_data(F64, (4097,), 17, "small")
    for text in ("var(x)", "std(x)", "var(x, ddof=1)"):
        got = nd.kiln_eval(text, x=x)
        want = numpy_eval(text, x=x)
        assert abs(got - want) <= 1e-9 * want, f"{text}: kiln {got!r} NumPy {want!r}"


# --------------------------------------------------------------------------------------
# 2. Sizes across block and chunk boundaries
# --------------------------------------------------------------------------------------

LENGTHS = [1, 63, 64, 65, 127, 128, 129, 16383, 16384, 16385, 100003]


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("func", REDUCTIONS)
@pytest.mark.parametrize("n", LENGTHS)
def test_1d_lengths(n, func, dtype):
    x = data(dtype, (n,), n, func)
    check_reduction(nd.kiln_eval(f"{func}(x)", x=x), x, func, where=f"{func}(x) [({n},) {dtype.name}]")
    if n > 1000:  # the same memory reversed and at a stride of two
        v = x[::-2]
        check_reduction(nd.kiln_eval(f"{func}(v)", v=v), v, func, where=f"{func}(x[::-2]) [({n},) {dtype.name}]")


SHAPES_2D = [(257, 4099), (3, 70000), (70000, 3)]


@pytest.mark.parametrize("dtype", [I32, F32, F64], ids=str)
@pytest.mark.parametrize("func", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES_2D, ids=lambda s: "x".join(map(str, s)))
def test_2d_large(shape, func, dtype):
    x = data(dtype, shape, shape[0], func)
    for axis in (0, 1, None):
        text = call_text(func, axis)
        check_reduction(nd.kiln_eval(text, x=x), x, func, axis, where=f"{text} [{shape} {dtype.name}]")
    t = x.T  # the same memory, Fortran order
    for axis in (0, 1):
        text = call_text(func, axis)
        check_reduction(nd.kiln_eval(text, x=t), t, func, axis, where=f"{text} [{shape}.T {dtype.name}]")


@pytest.mark.parametrize("n", [64, 16385, 100003])
def test_any_all_find_one_element_anywhere(n):
    for pos in sorted({p for p in (0, 63, 64, n // 2, n - 1) if p < n}):
        x = np.zeros(n, np.bool_)
        x[pos] = True
        assert nd.kiln_eval("any(x)", x=x)[()], f"any: a True at {pos} of {n} missed"
        assert not nd.kiln_eval("all(x)", x=x)[()], f"all of one True at {pos} of {n}"
        assert nd.kiln_eval("all(x)", x=~x)[()] == False, f"all: a False at {pos} of {n} missed"  # noqa: E712
        f = np.zeros(n)
        f[pos] = -0.5
        assert nd.kiln_eval("any(f)", f=f)[()], f"any(float): a nonzero at {pos} of {n} missed"
        assert nd.kiln_eval("argmin(f)", f=f)[()] == pos
        assert nd.kiln_eval("min(f)", f=f)[()] == -0.5
        xr = x.reshape(-1, 1) if n % 2 else x.reshape(2, -1)
        for axis in (0, 1):
            assert_exact(nd.kiln_eval(f"any(x, axis={axis})", x=xr), np.any(xr, axis=axis), f"any axis {axis}")
            assert_exact(nd.kiln_eval(f"all(x, axis={axis})", x=~xr), np.all(~xr, axis=axis), f"all axis {axis}")


# --------------------------------------------------------------------------------------
# 3. NaN, inf and ties
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
@pytest.mark.parametrize("func", ["sum", "mean", "min", "max", "argmin", "argmax", "var", "any", "all"])
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
def test_nan_and_inf_propagate_like_numpy(func, dtype, axis):
    # nd.make_data's "edges": NaN, +-inf, +-0.0, subnormals, 1e300 (inf in float32), ...
    # (prod is left out: with 1e300 and 1e-310 in one product, the order decides between
    # overflow, underflow and a finite value; its NaN propagation is checked below.)
    if func in ONE_AXIS and isinstance(axis, tuple):
        pytest.skip("argmin/argmax take one axis")
    seed = zlib.crc32(f"{func}/{axis}".encode()) & 0xFFFF
    for x in (nd.make_data(dtype, (9, 11), seed).T, nd.make_data(dtype, (40, 30), seed + 1)[::3, ::-2]):
        text = call_text(func, axis)
        got = nd.kiln_eval(text, x=x)
        check_reduction(got, x, func, axis, where=f"{text} [edges {dtype.name} {x.shape}]")


@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
def test_argmin_argmax_return_the_first_nan(dtype):
    x = np.array([1.0, -np.inf, np.nan, 5.0, np.nan, np.inf], dtype)
    for func in ("argmin", "argmax"):
        assert nd.kiln_eval(f"{func}(x)", x=x)[()] == 2 == NUMPY_NS[func](x)
    assert np.isnan(nd.kiln_eval("min(x)", x=x)[()]) and np.isnan(nd.kiln_eval("max(x)", x=x)[()])
    # Across block and chunk boundaries: the first NaN wins wherever the extremes lie.
    n = 100003
    for first in (0, 64, 16383, 16384, 70001, n - 1):
        x = data(dtype, (n,), first, "sum")
        x[n // 3] = 1e30  # a larger max before the NaN
        x[first] = np.nan
        x[min(first + 5, n - 1)] = np.nan
        for func in ("argmin", "argmax"):
            got = nd.kiln_eval(f"{func}(x)", x=x)[()]
            assert got == first == NUMPY_NS[func](x), f"{func}: kiln {got}, first NaN at {first} of {n}"
        for func in ("min", "max", "sum", "mean", "prod", "std"):
            assert np.isnan(nd.kiln_eval(f"{func}(x)", x=x)[()]), f"{func} with a NaN at {first} of {n}"
    # Along an axis, a NaN in some columns only.
    y = data(dtype, (300, 70), 9, "sum")
    y[[5, 299, 17], [3, 3, 40]] = np.nan
    y[250, 40] = np.nan
    for func in ("argmin", "argmax", "min", "max", "sum"):
        for axis in (0, 1):
            text = call_text(func, axis)
            check_reduction(nd.kiln_eval(text, x=y), y, func, axis, where=f"{text} [NaNs in columns 3, 40]")


@pytest.mark.parametrize("dtype", [B, I32, I64, F32, F64], ids=str)
def test_argmin_argmax_ties_return_the_first(dtype):
    n = 100003
    x = np.zeros(n, dtype)
    for func, extreme in (("argmax", 1), ("argmin", 0 if dtype == B else -1)):
        x[:] = 0 if func == "argmax" or dtype != B else 1
        assert nd.kiln_eval(f"{func}(x)", x=x)[()] == 0, f"{func} of all-equal {dtype}"
        for positions in ([70001, 16384, 99999], [n - 1, 64], [65, 63, 16385]):
            y = x.copy()
            y[positions] = extreme
            got = nd.kiln_eval(f"{func}(y)", y=y)[()]
            assert got == min(positions) == NUMPY_NS[func](y), f"{func}: tie at {positions}, kiln {got}"
    # Small integers: many ties in every row and column.
    z = nd.make_data(dtype, (300, 333), 4, "small")
    z = (z % 3) if dtype.kind in "iu" else (np.round(z) if dtype.kind == "f" else z)
    for func in ("argmin", "argmax"):
        for axis in (None, 0, 1, -1):
            text = call_text(func, axis)
            check_reduction(nd.kiln_eval(text, x=z), z, func, axis, where=f"{text} [ties, {dtype.name}]")
            check_reduction(nd.kiln_eval(text, x=z.T), z.T, func, axis, where=f"{text} [ties, .T {dtype.name}]")


# --------------------------------------------------------------------------------------
# 4. Reductions inside expressions
# --------------------------------------------------------------------------------------

# (expression, tolerance scale as NumPy text or None for exact, operand dtypes). The tolerance
# is rtol * (|result| + scale), scale covering the magnitudes the rounding errors come from.
EXPRESSIONS = [
    ("sum(a*b)", "sum(abs(a*b))", [F64, F32, I32, I64]),
    ("sum(x**2, axis=1)", "sum(x**2, axis=1)", [F64, F32, I32]),
    ("max(abs(a - b))", None, [F64, F32, I32, I64]),
    ("(a - mean(a)) / std(a)", "(abs(a) + mean(abs(a))) / std(a)", [F64, F32, I32]),
    ("a - mean(a, axis=0)", "abs(a) + mean(abs(a), axis=0)", [F64, F32, I32, I64]),
    ("a - mean(a, axis=1, keepdims=True)", "abs(a) + mean(abs(a), axis=1, keepdims=True)", [F64, F32, I32]),
    ("sum(where(x > 0, x, 0), axis=0)", "sum(abs(x), axis=0)", [F64, F32, I32, I64]),
    ("argmax(a + b, axis=-1)", None, [F64, F32, I32, I64, B]),
    ("any(isnan(x))", None, [F64, F32]),
    ("mean(x > 0)", "1", [F64, F32, I32, I64]),
    ("sum(x - mean(x, axis=0), axis=0)", "3 * sum(abs(x), axis=0)", [F64, F32]),
    ("std(x, axis=(0, 1), ddof=1)", "0", [F64, F32, I32]),
    ("x / max(abs(x), axis=0)", "abs(x / max(abs(x), axis=0))", [F64, F32]),
    ("min(x, axis=0) + max(x, axis=-1, keepdims=True)", None, [F64, F32, I32, I64]),
    ("sum(exp(x - max(x, axis=-1, keepdims=True)), axis=-1)", "x.shape[-1]", [F64, F32]),
    ("prod(1 + x / 1000, axis=1)", "0", [F64, F32]),
    ("var(a + b, axis=0) - var(a, axis=0)", "var(a + b, axis=0) + var(a, axis=0)", [F64]),
    ("all(x == x) & any(x > 2)", None, [F64, F32, I32]),
    ("sum(a, axis=0) * 2 + sum(b * a, axis=0)", "2 * sum(abs(a), axis=0) + sum(abs(b * a), axis=0)", [F64, I64]),
    ("t = a * b; s = sum(t, axis=1, keepdims=True); t / s",
     "abs(a * b) * sum(abs(a * b), axis=1, keepdims=True) / sum(a * b, axis=1, keepdims=True) ** 2", [F64]),
]


def _expr_layouts(dtype, seed, name_index):
    yield "C", data(dtype, (40, 33), seed + name_index, kind="positive" if dtype.kind == "f" else None)
    yield "T", data(dtype, (33, 40), seed + name_index).T
    yield "big", data(dtype, (517, 1031), seed + name_index)


def _expr_params():
    params = []
    for expr, scale, dtypes in EXPRESSIONS:
        for dtype in dtypes:
            params.append(pytest.param(expr, scale, dtype, id=f"{expr} [{dtype.name}]"))
    return params


@pytest.mark.parametrize("expr,scale,dtype", _expr_params())
def test_expressions_match_numpy(expr, scale, dtype):
    names = sorted(set(re.findall(r"\b[abx]\b", expr)))
    seed = zlib.crc32(expr.encode()) & 0xFFFF
    layouts = {}
    for i, n in enumerate(names):
        for layout, arr in _expr_layouts(dtype, seed, i):
            layouts.setdefault(layout, {})[n] = arr
    if expr == "any(isnan(x))":  # one case with NaNs, one without
        layouts["nans"] = {"x": nd.make_data(dtype, (517, 33), seed)}
    for layout, arrays in layouts.items():
        where = f"{expr} [{dtype.name}, {layout}]"
        want = numpy_eval(expr.split(";")[-1] if ";" in expr else expr, **_program_env(expr, arrays))
        got = nd.kiln_eval(expr, **arrays)
        if scale is None or want.dtype.kind != "f":
            assert_exact(got, want, where, zero_sign=False)
            continue
        with np.errstate(all="ignore"):
            s = numpy_eval(scale, **{k: v.astype(np.float64) for k, v in arrays.items()})
            x64 = {k: v.astype(np.float64) if v.dtype == F32 else v for k, v in arrays.items()}
            ref = numpy_eval(expr.split(";")[-1], **_program_env(expr, x64)) if dtype == F32 else want
        rtol = RTOL[F32] if dtype == F32 else RTOL[F64]
        tol = rtol * (np.abs(np.asarray(ref, np.float64)) + s)
        assert_close(got, want, ref, tol, where)


BROADCAST_EXPRESSIONS = [
    ("sum(a + b, axis=0)", "sum(abs(a) + abs(b), axis=0)"),
    ("mean(a * b, axis=1, keepdims=True)", "mean(abs(a * b), axis=1, keepdims=True)"),
    ("max(a - b)", None),
    ("argmin(a * b, axis=0)", None),
    ("sum(sum(a + b, axis=0) * b, axis=1)", "sum(sum(abs(a) + abs(b), axis=0) * abs(b), axis=1)"),
]


@pytest.mark.parametrize("expr,scale", BROADCAST_EXPRESSIONS, ids=[e for e, _ in BROADCAST_EXPRESSIONS])
@pytest.mark.parametrize("dtype", [F64, I32], ids=str)
def test_reductions_of_broadcast_operands(expr, scale, dtype):
    # a (3, 1) against b (1, 4099): the reduced operand exists only as a broadcast.
    arrays = {"a": data(dtype, (3, 1), 61), "b": data(dtype, (1, 4099), 62)}
    want = numpy_eval(expr, **arrays)
    got = nd.kiln_eval(expr, **arrays)
    if scale is None or want.dtype.kind != "f":
        assert_exact(got, want, expr, zero_sign=False)
    else:
        tol = RTOL[F64] * (np.abs(want) + numpy_eval(scale, **arrays))
        assert_close(got, want, want, tol, expr)


OUT_CASES = [
    # (expression, out: "fresh" or "alias" (out is x itself), out shape/dtype/view)
    ("sum(x, axis=0)", "fresh", F64, (7,), None),
    ("sum(x, axis=0)", "fresh", F32, (7,), None),      # same_kind cast of the result
    ("sum(x, axis=0)", "fresh", F64, (14,), "::2"),    # a strided out
    ("mean(x, axis=1)", "fresh", F64, (6,), "::-1"),   # a reversed out
    ("sum(x, axis=0)", "fresh", F64, (3, 7), None),    # the result broadcast into out
    ("x - mean(x, axis=0)", "alias", F64, None, None),  # the reduction must finish before x is written
    ("x / sum(x)", "alias", F64, None, None),
    ("x - max(x, axis=1, keepdims=True)", "alias", F64, None, None),
]


@pytest.mark.parametrize("expr,kind,dtype,shape,view", OUT_CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}-{c[3]}-{c[4]}"
                                                                       for c in OUT_CASES])
def test_reductions_into_out(expr, kind, dtype, shape, view):
    x = data(F64, (6, 7), 71)
    want = numpy_eval(expr, x=x)
    if kind == "alias":
        out = x.copy()
        nd.kiln_eval(expr, out=out, x=out)
    else:
        base = np.full(shape, 99, dtype)
        out = base[::2] if view == "::2" else base[::-1] if view == "::-1" else base
        nd.kiln_eval(expr, out=out, x=x)
        want = np.broadcast_to(want, out.shape).astype(dtype)
        if view == "::2":
            assert np.all(base[1::2] == 99), f"{expr}: kiln wrote between the strided out's items"
    scale = numpy_eval("abs(x) + sum(abs(x))" if kind == "alias" else "sum(abs(x), axis=0)" if "axis=0" in expr
                       else "mean(abs(x), axis=1)", x=x)
    assert_close(out, want, want, RTOL[dtype] * (np.abs(want) + scale), f"{expr} into {kind} out {out.shape}")


def _program_env(expr, arrays):
    """NumPy's values of a program's assignments (the statements before the last)."""
    env = dict(arrays)
    for stmt in expr.split(";")[:-1]:
        name, value = stmt.split("=", 1)
        env[name.strip()] = numpy_eval(value, **env)
    return env


# --------------------------------------------------------------------------------------
# 5. Every SIMD instruction set; 1, 2 and 7 threads
# --------------------------------------------------------------------------------------

ISA_CASES = [("sum", None), ("mean", None), ("std", None), ("prod", None), ("sum", 0), ("sum", 1), ("var", 1),
             ("min", 1), ("max", None), ("argmin", 1), ("argmax", None), ("argmax", 0)]


@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
@pytest.mark.parametrize("func,axis", ISA_CASES, ids=[f"{f}-axis{a}" for f, a in ISA_CASES])
def test_every_isa(func, axis, dtype):
    x = data(dtype, (257, 4099), 77, func)
    text = call_text(func, axis)
    results = nd.in_every_isa(lambda: nd.kiln_eval(text, x=x))
    for isa, got in results:
        check_reduction(got, x, func, axis, where=f"{text} [{dtype.name}, isa {isa}]")
    if func in EXACT:  # no rounding: identical, bit for bit, whatever the vector width
        for isa, got in results[1:]:
            assert_exact(got, results[0][1], f"{text} [{dtype.name}]: isa {isa} vs {results[0][0]}")


@pytest.fixture
def threads():
    """kiln_set_num_threads, restored to 0 (every core) afterwards."""
    def set_threads(n):
        assert lib.kiln_set_num_threads(n) == nd.KILN_OK
        assert lib.kiln_get_num_threads() == n
    yield set_threads
    assert lib.kiln_set_num_threads(0) == nd.KILN_OK


THREAD_CASES = [("big", "sum(x)"), ("big", "mean(x)"), ("big", "std(x)"), ("big", "argmax(x)"),
                ("big", "var(x, ddof=1)"), ("big", "sum(x * x)"), ("wide", "sum(w, axis=0)"),
                ("wide", "mean(w, axis=1)"), ("wide", "max(w, axis=0)"), ("wide", "w - mean(w, axis=0)")]


# Tolerance scales (NumPy text) of the float results, as in EXPRESSIONS.
THREAD_SCALES = {"sum(x)": "sum(abs(x))", "mean(x)": "mean(abs(x))", "sum(x * x)": "sum(x * x)",
                 "sum(w, axis=0)": "sum(abs(w), axis=0)", "mean(w, axis=1)": "mean(abs(w), axis=1)",
                 "w - mean(w, axis=0)": "abs(w) + mean(abs(w), axis=0)"}


@pytest.mark.parametrize("operand,text", THREAD_CASES, ids=[t for _, t in THREAD_CASES])
def test_bit_identical_for_any_thread_count(operand, text, threads):
    if operand == "big":
        arrays = {"x": nd.make_data(F64, (3_000_001,), 31, "small")}
    else:
        arrays = {"w": nd.make_data(F64, (3000, 1000), 32, "small")}
    results = []
    for n in (1, 2, 7):
        threads(n)
        results.append((n, nd.kiln_eval(text, **arrays)))
    for n, got in results[1:]:
        bad = got.view(np.int64) != results[0][1].view(np.int64)
        assert not np.any(bad), nd._report(f"{text}: {n} threads vs 1", got, results[0][1], bad)
    # And right, not just reproducible.
    want = numpy_eval(text, **arrays)
    scale = numpy_eval(THREAD_SCALES.get(text, "0"), **arrays)
    got = results[0][1]
    if got.dtype.kind != "f" or text.startswith("max"):
        assert_exact(got, want, text)
    else:
        assert_close(got, want, want, RTOL[F64] * (np.abs(want) + scale), text)


# --------------------------------------------------------------------------------------
# 6. Programs: kiln_eval_many
# --------------------------------------------------------------------------------------

def eval_many(program, arrays, result_names=None, nresults=None, slots=None):
    """kiln_eval_many over the named NumPy arrays. Returns a list of NumPy copies of the
    results. On an error raises KilnError with .slots, the result handles kiln left (all of
    `slots` handles, initialised to NULL: more than nresults when asked, to catch overruns)."""
    keep = list(arrays.values())
    handles = [nd._wrap(a) for a in keep]
    try:
        n = len(handles)
        names = (ctypes.c_char_p * max(n, 1))(*[k.encode() for k in arrays])
        hs = (ctypes.c_void_p * max(n, 1))(*[h.value for h in handles])
        if nresults is None:
            nresults = len(result_names)
        rnames = None
        if result_names is not None:
            rnames = (ctypes.c_char_p * max(len(result_names), 1))(*[r.encode() for r in result_names])
        out = (ctypes.c_void_p * max(slots or 0, nresults, 1))()
        status = lib.kiln_eval_many(program.encode(), n, names, hs, nresults, rnames, out)
        left = list(out)
        if status != nd.KILN_OK:
            err = nd.KilnError(status, lib.kiln_last_error().decode())
            err.slots = left
            for h in left:  # never expected; release rather than leak
                if h:
                    lib.kiln_array_release(h)
            raise err
        try:
            assert all(h for h in left[:nresults]), f"{program}: a result handle is NULL: {left}"
            assert not any(left[nresults:]), f"{program}: kiln wrote past nresults={nresults}"
            return [nd._to_numpy(h) for h in left[:nresults]]
        finally:
            for h in left:
                if h:
                    lib.kiln_array_release(h)
    finally:
        for h in handles:
            lib.kiln_array_release(h)
        del keep


PROGRAM = "t = a*b; s = sum(t); r = t - s"


def _program_inputs(dtype):
    return {"a": data(dtype, (37, 29), 41), "b": data(dtype, (29, 37), 42).T}


def _program_want(arrays):
    t = arrays["a"] * arrays["b"]
    s = np.asarray(np.sum(t))
    return t, s, np.asarray(t - s), np.sum(np.abs(t))


@pytest.mark.parametrize("dtype", [I64, F64, F32], ids=str)
@pytest.mark.parametrize("named", [True, False], ids=["result_names", "statements"])
def test_program_results(dtype, named):
    arrays = _program_inputs(dtype)
    if named:
        got = eval_many(PROGRAM, arrays, ["t", "s", "r"])
    else:
        got = eval_many(PROGRAM, arrays, None, nresults=3)
    t, s, r, abs_sum = _program_want(arrays)
    assert_exact(got[0], t, "t = a*b")
    rtol = RTOL[F32] if dtype == F32 else RTOL[F64]
    if dtype.kind == "f":
        assert_close(got[1], s, s, rtol * abs_sum, "s = sum(t)")
        assert_close(got[2], r, r, rtol * (abs_sum + np.abs(t)), "r = t - s")
        # r is computed from the same s kiln returned: t - s exactly.
        assert_exact(got[2], (t - got[1]).astype(dtype), "r = t - s (with kiln's s)")
    else:
        assert_exact(got[1], s, "s = sum(t)")
        assert_exact(got[2], r, "r = t - s")


def test_program_result_order_reassignment_and_bare_statements():
    arrays = _program_inputs(F64)
    a, b = arrays["a"], arrays["b"]
    # result_names in any order; a name's value is the one assigned last.
    got = eval_many("t = a*b; m = max(t, axis=0); t = t + 1; argmax(t, axis=1)", arrays, ["m", "t", "t"])
    assert_exact(got[0], np.max(a * b, axis=0), "m")
    assert_exact(got[1], a * b + 1, "t (reassigned)")
    assert_exact(got[2], a * b + 1, "t (asked twice)")
    # Without names a bare expression's value is a result too.
    got = eval_many("t = a*b; m = max(t, axis=0); t = t + 1; argmax(t, axis=1)", arrays, None, nresults=4)
    for g, w, what in zip(got, [a * b, np.max(a * b, axis=0), a * b + 1, np.argmax(a * b + 1, axis=1)],
                          ["t", "m", "t + 1", "argmax"]):
        assert_exact(g, np.asarray(w), what)
    # kiln_eval on a program: the last statement's value.
    got = nd.kiln_eval("m = min(a, axis=1, keepdims=True); d = a - m; sum(d * d, axis=1)", **arrays)
    m = np.min(a, axis=1, keepdims=True)
    want = np.sum((a - m) ** 2, axis=1)
    assert_close(got, want, want, RTOL[F64] * want, "kiln_eval(program)")


def test_program_nresults_zero_is_refused():
    with pytest.raises(nd.KilnError) as info:
        eval_many(PROGRAM, _program_inputs(F64), None, nresults=0, slots=4)
    assert info.value.status == nd.KILN_ERROR_BAD_ARGUMENT, info.value
    assert info.value.slots == [None] * 4


@pytest.mark.parametrize("cache", ["cold", "warm"])
@pytest.mark.parametrize("nresults", [1, 2, 4])
def test_program_nresults_mismatch_sets_nothing(nresults, cache):
    # "warm": the plan of the same text, planned by a correct call, must not skip the count
    # check (it once did: kiln then wrote one handle per statement, past results[nresults-1]).
    # A program text of its own, so that "cold" really finds no plan in kiln's cache.
    program = f"t{nresults}{cache} = a*b; s = sum(t{nresults}{cache}); r = t{nresults}{cache} - s"
    arrays = _program_inputs(F64)
    if cache == "warm":  # the same program, planned by a correct call first
        assert len(eval_many(program, arrays, None, nresults=3)) == 3
    with pytest.raises(nd.KilnError) as info:
        eval_many(program, arrays, None, nresults=nresults, slots=5)  # 5 slots: room to see an overrun
    assert info.value.status == nd.KILN_ERROR_BAD_ARGUMENT, info.value
    assert "3 statements" in info.value.message and str(nresults) in info.value.message, info.value.message
    assert info.value.slots == [None] * 5


def test_program_unknown_result_name_sets_nothing():
    with pytest.raises(nd.KilnError) as info:
        eval_many(PROGRAM, _program_inputs(F64), ["t", "nope", "r"], slots=4)
    assert info.value.status == nd.KILN_ERROR_UNKNOWN_NAME
    assert "nope" in info.value.message
    assert info.value.slots == [None] * 4


@pytest.mark.parametrize("program,status,word", [
    ("t = a*b; s = sum(t, axis=2); r = t - s", nd.KILN_ERROR_BAD_ARGUMENT, "axis 2"),
    ("t = a*b; s = sum(t; r = t - s", nd.KILN_ERROR_PARSE, ""),
    ("t = a*b; s = sum(q); r = t - s", nd.KILN_ERROR_UNKNOWN_NAME, "q"),
    ("t = a*b; s = max(t, axis=0, ddof=1); r = t - s", nd.KILN_ERROR_PARSE, "ddof"),
    ("t = a*b; s = argmax(t, axis=(0, 1)); r = t - s", None, "argmax"),
])
def test_program_errors_set_nothing(program, status, word):
    with pytest.raises(nd.KilnError) as info:
        eval_many(program, _program_inputs(F64), ["t", "s", "r"], slots=4)
    if status is None:  # argmax's tuple axis: refused, at parse or bind time
        assert info.value.status in (nd.KILN_ERROR_PARSE, nd.KILN_ERROR_BAD_ARGUMENT), info.value
    else:
        assert info.value.status == status, info.value
    assert word in info.value.message
    assert info.value.slots == [None] * 4


# --------------------------------------------------------------------------------------
# 7. Errors
# --------------------------------------------------------------------------------------

def kiln_error(text, **arrays):
    with pytest.raises(nd.KilnError) as info:
        nd.kiln_eval(text, **arrays)
    return info.value


@pytest.mark.parametrize("func", REDUCTIONS)
def test_axis_out_of_bounds(func):
    x = np.ones((3, 4))
    for axis in (2, -3, 7):
        err = kiln_error(call_text(func, axis), x=x)
        assert err.status == nd.KILN_ERROR_BAD_ARGUMENT, err
        assert f"axis {axis} is out of bounds" in err.message, err.message
        with pytest.raises(ValueError):  # NumPy refuses the same (AxisError)
            NUMPY_NS[func](x, axis=axis)
    err = kiln_error(f"{func}(s, axis=0)", s=np.array(1.0))
    assert err.status == nd.KILN_ERROR_BAD_ARGUMENT and "axis 0 is out of bounds" in err.message, err


@pytest.mark.parametrize("func", [f for f in REDUCTIONS if f not in ONE_AXIS])
def test_repeated_axis(func):
    x = np.ones((3, 4, 5))
    # The same axis after normalisation: known only once the operand's ndim is.
    for axis in ((1, -2), (2, 0, -1), (-3, 0)):
        err = kiln_error(call_text(func, axis), x=x)
        assert err.status == nd.KILN_ERROR_BAD_ARGUMENT, err
        assert re.search("twice|repeated", err.message), err.message
        with pytest.raises(ValueError):  # NumPy refuses the same
            NUMPY_NS[func](x, axis=axis)
    # The same number twice in the text: a parse error.
    err = kiln_error(call_text(func, (0, 0)), x=x)
    assert err.status == nd.KILN_ERROR_PARSE and re.search("twice|repeated", err.message), err


ERROR_KINDS = {
    "out-of-bounds": ("{f}(x, axis=2)", np.ones((3, 4))),
    "repeated": ("{f}(x, axis=(1, -1))", np.ones((3, 4))),
    "keepdims-0d": ("{f}(x, keepdims=True)", np.array(1.0)),
}


@pytest.mark.parametrize("kind", list(ERROR_KINDS))
@pytest.mark.parametrize("func", REDUCTIONS)
def test_errors_name_the_reduction_written(func, kind):
    if func in ONE_AXIS and kind == "repeated":
        pytest.skip("argmin/argmax take one axis")
    template, x = ERROR_KINDS[kind]
    text = template.format(f=func)
    err = kiln_error(text, x=x)
    assert err.status == nd.KILN_ERROR_BAD_ARGUMENT, err
    others = [f for f in REDUCTIONS if f != func and re.search(rf"\b{f}\b", err.message)]
    assert re.search(rf"\b{func}\b", err.message) and not others, f"{text}: {err.message}"


@pytest.mark.parametrize("func", ["argmin", "argmax"])
def test_arg_reductions_take_one_axis(func):
    err = kiln_error(f"{func}(x, axis=(0, 1))", x=np.ones((3, 4)))
    assert err.status in (nd.KILN_ERROR_BAD_ARGUMENT, nd.KILN_ERROR_PARSE) and func in err.message, err


@pytest.mark.parametrize("func", ["min", "max", "argmin", "argmax"])
def test_empty_extent_has_no_min_max_arg(func):
    for shape, axis in (((0,), "default"), ((0, 3), 0), ((3, 0), 1), ((3, 0), -1), ((3, 0), None), ((2, 0, 4), 1)):
        x = np.zeros(shape)
        text = call_text(func, axis)
        err = kiln_error(text, x=x)
        assert err.status == nd.KILN_ERROR_BAD_ARGUMENT and "empty" in err.message and func in err.message, \
            f"{text} on {shape}: {err}"
        with pytest.raises(ValueError):  # NumPy refuses the same
            NUMPY_NS[func](x, **({} if axis == "default" else {"axis": axis}))
    # An empty output is fine when the reduced extent is not empty.
    for shape, axis in (((0, 3), 1), ((3, 0), 0), ((0, 3, 4), (1, 2)) if func not in ONE_AXIS else ((0, 3, 4), 2)):
        x = np.zeros(shape, np.float32)
        text = call_text(func, axis)
        check_reduction(nd.kiln_eval(text, x=x), x, func, axis, where=f"{text} on {shape}")


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("func", ["sum", "prod", "any", "all", "mean", "var", "std"])
def test_empty_extent_identities(func, dtype):
    # 0, 1, False, True, and NaN for mean/var/std, as NumPy.
    for shape, axis in (((0,), "default"), ((0, 3), 0), ((3, 0), 1), ((0, 3), None), ((2, 0, 4), (0, 1))):
        x = np.zeros(shape, dtype)
        for keepdims in (False, True):
            if axis == "default" and keepdims:
                continue
            text = call_text(func, axis, keepdims)
            check_reduction(nd.kiln_eval(text, x=x), x, func, axis, keepdims, where=f"{text} on {shape} {dtype.name}")


@pytest.mark.parametrize("func", REDUCTIONS)
def test_keepdims_on_0d_operand(func):
    err = kiln_error(f"{func}(s, keepdims=True)", s=np.array(2.0))
    assert err.status == nd.KILN_ERROR_BAD_ARGUMENT and "keepdims" in err.message, err
    # Without keepdims a 0-d operand reduces to itself (as NumPy).
    check_reduction(nd.kiln_eval(f"{func}(s)", s=np.array(2.0)), np.array(2.0), func, where=f"{func}(0-d)")


@pytest.mark.parametrize("text,word", [
    ("sum(x, axis=40)", "axis 40"),
    ("sum(x, axis=(0, 40))", "axis 40"),
    ("sum(x, foo=1)", "foo"),
    ("mean(x, out=x)", "out"),
    ("sum(x, ddof=1)", "ddof"),
    ("argmax(x, ddof=1)", "ddof"),
    ("var(x, ddof=1.5)", "ddof"),
    ("sum(x, keepdims=1)", "keepdims"),
    ("sum(x, 0, True)", "positional"),
    ("sum(x, axis=0, axis=1)", "axis"),
    ("max(x, axis=)", ""),
])
def test_parse_errors(text, word):
    err = kiln_error(text, x=np.ones((3, 4)))
    assert err.status == nd.KILN_ERROR_PARSE, err
    assert word in err.message, err.message


@pytest.mark.parametrize("func", REDUCTIONS)
def test_reduction_without_operand(func):
    err = kiln_error(f"{func}()", x=np.ones(3))
    assert err.status in (nd.KILN_ERROR_PARSE, nd.KILN_ERROR_BAD_ARGUMENT) and func in err.message, err
