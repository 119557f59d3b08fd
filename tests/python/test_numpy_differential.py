"""kiln against NumPy 1.24, through the C ABI.

Every case wraps NumPy arrays zero-copy (byte strides, so transposed, strided and
reversed views go in as they are), evaluates an expression with kiln_eval, copies the
result out and compares values AND dtype with NumPy evaluating the same text. numexpr
is a second reference for a few float64 expressions.

Run with Debian's interpreter, which has numpy 1.24, numexpr and pytest:

    /usr/bin/python3 -m pytest tests/python/test_numpy_differential.py

The library is $KILN_LIBRARY, else build/libkiln.so under the repository root.

Known, intentional divergences are not tested against NumPy (see the lead's notes):
0-d inputs (kiln treats them as arrays), bool operands where NumPy would return
int8/float16 (a TypeError in kiln), integer ** negative integer, integer reciprocal.
Transcendental functions are compared within a few ulp; everything else exactly,
NaN positions included.
"""

import ctypes
import os
import pathlib
import re

import numpy as np
import pytest

# --------------------------------------------------------------------------------------
# The C ABI through ctypes
# --------------------------------------------------------------------------------------

KILN_OK = 0
KILN_ERROR_PARSE = 1
KILN_ERROR_UNKNOWN_NAME = 2
KILN_ERROR_SHAPE = 3
KILN_ERROR_TYPE = 4
KILN_ERROR_BAD_ARGUMENT = 5

CODES = {np.dtype(np.bool_): 0, np.dtype(np.int32): 1, np.dtype(np.int64): 2,
         np.dtype(np.float32): 3, np.dtype(np.float64): 4}
DTYPES = {code: dt for dt, code in CODES.items()}


def _find_library():
    env = os.environ.get("KILN_LIBRARY")
    if env:
        return env
    root = pathlib.Path(__file__).resolve().parents[2]
    for candidate in (root / "build" / "libkiln.so", pathlib.Path.cwd() / "build" / "libkiln.so",
                      pathlib.Path.cwd() / "libkiln.so"):
        if candidate.exists():
            return str(candidate)
    pytest.skip("libkiln.so not found: build it or set KILN_LIBRARY", allow_module_level=True)


lib = ctypes.CDLL(_find_library())
c_i64p = ctypes.POINTER(ctypes.c_int64)
lib.kiln_last_error.restype = ctypes.c_char_p
lib.kiln_last_error.argtypes = []
lib.kiln_array_wrap.restype = ctypes.c_int
lib.kiln_array_wrap.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, c_i64p, c_i64p,
                                ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
lib.kiln_array_release.restype = None
lib.kiln_array_release.argtypes = [ctypes.c_void_p]
lib.kiln_array_dtype.restype = ctypes.c_int
lib.kiln_array_dtype.argtypes = [ctypes.c_void_p]
lib.kiln_array_ndim.restype = ctypes.c_int
lib.kiln_array_ndim.argtypes = [ctypes.c_void_p]
lib.kiln_array_shape.restype = c_i64p
lib.kiln_array_shape.argtypes = [ctypes.c_void_p]
lib.kiln_array_strides.restype = c_i64p
lib.kiln_array_strides.argtypes = [ctypes.c_void_p]
lib.kiln_array_size.restype = ctypes.c_int64
lib.kiln_array_size.argtypes = [ctypes.c_void_p]
lib.kiln_array_data.restype = ctypes.c_void_p
lib.kiln_array_data.argtypes = [ctypes.c_void_p]
lib.kiln_eval.restype = ctypes.c_int
lib.kiln_eval.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_char_p),
                          ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
lib.kiln_simd_isa.restype = ctypes.c_char_p
lib.kiln_simd_isa.argtypes = []
lib.kiln_set_simd_isa.restype = ctypes.c_int
lib.kiln_set_simd_isa.argtypes = [ctypes.c_char_p]


class KilnError(Exception):
    def __init__(self, status, message):
        super().__init__(f"kiln status {status}: {message}")
        self.status = status
        self.message = message


def _wrap(arr):
    """A kiln_array over arr's memory (no copy); the caller keeps arr alive."""
    shape = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.shape)
    strides = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.strides)
    handle = ctypes.c_void_p()
    status = lib.kiln_array_wrap(arr.ctypes.data, CODES[arr.dtype], arr.ndim, shape, strides, None, None,
                                 ctypes.byref(handle))
    if status != KILN_OK:
        raise KilnError(status, lib.kiln_last_error().decode())
    return handle


def _to_numpy(handle):
    """A NumPy copy of a kiln array, whatever its strides."""
    dtype = DTYPES[lib.kiln_array_dtype(handle)]
    ndim = lib.kiln_array_ndim(handle)
    shape = tuple(lib.kiln_array_shape(handle)[i] for i in range(ndim))
    strides = tuple(lib.kiln_array_strides(handle)[i] for i in range(ndim))
    size = lib.kiln_array_size(handle)
    if size == 0:
        return np.empty(shape, dtype)
    lo = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    hi = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0) + dtype.itemsize
    base = lib.kiln_array_data(handle) + lo
    buf = (ctypes.c_char * (hi - lo)).from_address(base)
    view = np.ndarray(shape, dtype, buffer=buf, offset=-lo, strides=strides)
    return view.copy()


def kiln_eval(expr, out=None, **arrays):
    """Evaluates expr over the named NumPy arrays; returns a NumPy copy of the result,
    or out (a NumPy array written in place) when given."""
    keep = list(arrays.values())  # the wrapped memory must outlive the handles
    handles = [_wrap(a) for a in keep]
    out_handle = _wrap(out) if out is not None else None
    try:
        n = len(handles)
        names = (ctypes.c_char_p * max(n, 1))(*[k.encode() for k in arrays])
        hs = (ctypes.c_void_p * max(n, 1))(*[h.value for h in handles])
        result = ctypes.c_void_p()
        status = lib.kiln_eval(expr.encode(), n, names, hs, out_handle, ctypes.byref(result))
        if status != KILN_OK:
            raise KilnError(status, lib.kiln_last_error().decode())
        if out is not None:
            assert not result.value
            return out
        try:
            return _to_numpy(result)
        finally:
            lib.kiln_array_release(result)
    finally:
        for h in handles:
            lib.kiln_array_release(h)
        if out_handle is not None:
            lib.kiln_array_release(out_handle)
        del keep


ORIGINAL_ISA = lib.kiln_simd_isa().decode()


def _available_isas():
    status = lib.kiln_set_simd_isa(b"no-such-isa")
    assert status == KILN_ERROR_BAD_ARGUMENT
    message = lib.kiln_last_error().decode()
    m = re.search(r"available:([^)]*)\)", message)
    assert m, message
    return m.group(1).split()


ISAS = _available_isas()


def in_every_isa(fn):
    """fn() under each SIMD instruction set this CPU has: the results must not depend on it."""
    results = []
    try:
        for isa in ISAS:
            assert lib.kiln_set_simd_isa(isa.encode()) == KILN_OK
            results.append((isa, fn()))
    finally:
        lib.kiln_set_simd_isa(ORIGINAL_ISA.encode())
    return results


# --------------------------------------------------------------------------------------
# NumPy's reading of the same expression text
# --------------------------------------------------------------------------------------

def _cast(dt):
    return lambda x: dt(x)


NUMPY_NS = {name: getattr(np, name) for name in (
    "add", "subtract", "multiply", "divide", "floor_divide", "remainder", "power", "negative", "invert",
    "bitwise_and", "bitwise_or", "bitwise_xor", "less", "less_equal", "greater", "greater_equal", "equal",
    "not_equal", "sqrt", "cbrt", "square", "reciprocal", "exp", "exp2", "expm1", "log", "log2", "log10",
    "log1p", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh", "arcsinh",
    "arccosh", "arctanh", "floor", "ceil", "trunc", "sign", "copysign", "hypot", "minimum", "maximum", "fmin",
    "fmax", "isnan", "isinf", "isfinite", "where", "clip")}
NUMPY_NS.update(
    abs=np.absolute,
    relu=lambda x: np.maximum(x, 0),
    # Integer operands compute in float64 (as every float function): -x must not wrap.
    sigmoid=lambda x: 1 / (1 + np.exp(-(x if np.asarray(x).dtype.kind == "f" else np.float64(x)))),
    bool=_cast(np.bool_), int32=_cast(np.int32), int64=_cast(np.int64),
    float32=_cast(np.float32), float64=_cast(np.float64),
    inf=float("inf"), nan=float("nan"),
)


def numpy_eval(expr, **arrays):
    with np.errstate(all="ignore"):
        return np.asarray(eval(expr, {"__builtins__": {}}, {**NUMPY_NS, **arrays}))  # noqa: S307


# --------------------------------------------------------------------------------------
# Comparison: exact for arithmetic, a few ulp for transcendental functions
# --------------------------------------------------------------------------------------

APPROX_FUNCS = ("exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "arcsin",
                "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "cbrt",
                "sigmoid", "power", "hypot", "sqrt")
# Functions for which the sign of a zero result is not pinned down (min/max of 0.0 and -0.0).
ZERO_SIGN_FREE = ("minimum", "maximum", "fmin", "fmax", "clip", "relu")


def _uses(expr, names):
    return any(re.search(r"\b%s\s*\(" % n, expr) for n in names) or ("**" in expr and "power" in names)


def assert_same(got, want, expr, approx=None, context=""):
    where = f"{expr} {context}"
    assert got.dtype == want.dtype, f"{where}: dtype {got.dtype}, NumPy {want.dtype}"
    assert got.shape == want.shape, f"{where}: shape {got.shape}, NumPy {want.shape}"
    if approx is None:
        approx = _uses(expr, APPROX_FUNCS)
    if got.dtype.kind != "f":
        bad = got != want
        assert not bad.any(), _report(where, got, want, bad)
        return
    gn, wn = np.isnan(got), np.isnan(want)
    bad = gn != wn
    assert not bad.any(), _report(where + " (NaN positions)", got, want, bad)
    g, w = np.where(gn, 0, got), np.where(wn, 0, want)
    if not approx:
        bad = g != w
        if not _uses(expr, ZERO_SIGN_FREE):
            bad |= (g == 0) & (w == 0) & (np.signbit(g) != np.signbit(w))
        assert not bad.any(), _report(where, got, want, bad)
        return
    finfo = np.finfo(got.dtype)
    rtol = 4e-15 if got.dtype == np.float64 else 1e-6
    atol = float(finfo.tiny) * 1e4
    with np.errstate(all="ignore"):
        inf_mismatch = (np.isinf(g) | np.isinf(w)) & (g != w)
        err = np.abs(g.astype(np.float64) - w.astype(np.float64))
        bad = inf_mismatch | (~np.isinf(w) & (err > rtol * np.abs(w.astype(np.float64)) + atol))
    assert not bad.any(), _report(where + " (approximate)", got, want, bad)


def _report(where, got, want, bad):
    idx = np.argwhere(bad)
    shown = []
    for i in idx[:5]:
        i = tuple(i)
        shown.append(f"[{','.join(map(str, i))}]: kiln {got[i]!r} NumPy {want[i]!r}")
    return f"{where}: {len(idx)} of {bad.size} differ; " + "; ".join(shown)


# --------------------------------------------------------------------------------------
# Data: edge values first, then a seeded spread
# --------------------------------------------------------------------------------------

FLOAT_EDGES = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, 3.0, -3.0, 1e-310, -1e-310,
               1e300, -1e300, 7.0, -7.0, 0.1]


def make_data(dtype, shape, seed, kind="edges"):
    """Values of dtype in a fresh C-contiguous array of shape. kind: "edges" (NaN, Inf,
    -0.0, integer min/max...), "finite" (finite floats that fit an int32), "small"
    (|x| <= 3, for functions with narrow domains) or "positive"."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape, dtype=np.int64))
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return (rng.random(n) < 0.5).reshape(shape)
    if dtype.kind == "i":
        info = np.iinfo(dtype)
        v = rng.integers(-100, 101, n).astype(dtype)
        if kind == "edges":
            edges = np.array([info.min, info.max, 0, -1, 1, info.min + 1, info.max - 1, 2, -2, 7, -7], dtype)
            edges = np.roll(edges, seed % len(edges))
            v[: min(n, len(edges))] = edges[: min(n, len(edges))]
        elif kind == "positive":
            v = np.abs(v) + 1
        return v.reshape(shape)
    if kind == "small":
        v = rng.uniform(-3, 3, n)
    elif kind == "positive":
        v = rng.uniform(0, 50, n) + 1e-3
    else:
        v = rng.standard_normal(n) * 10.0 ** rng.integers(-2, 3, n)
    if kind == "edges":
        edges = np.array(FLOAT_EDGES)
        edges = np.roll(edges, seed % len(edges))
        v[: min(n, len(edges))] = edges[: min(n, len(edges))]
        # Some exact integers and halves, where floor/round/remainder have edges.
        k = np.arange(n)
        v[(k % 13) == 5] = np.round(v[(k % 13) == 5])
        v[(k % 17) == 3] = np.round(v[(k % 17) == 3]) + 0.5
    with np.errstate(all="ignore"):
        return v.astype(dtype).reshape(shape)


# --------------------------------------------------------------------------------------
# Layouts: how the operands a, b, c sit in memory and broadcast
# --------------------------------------------------------------------------------------

def _contiguous(shape):
    return lambda dtype, seed, kind, i: make_data(dtype, shape, seed, kind)


def _broadcast(shapes):
    return lambda dtype, seed, kind, i: make_data(dtype, shapes[i], seed, kind)


def _transposed(dtype, seed, kind, i):
    if i == 0:
        return make_data(dtype, (37, 29), seed, kind).T  # (29, 37), Fortran order
    if i == 1:
        return make_data(dtype, (29, 37), seed, kind)
    return make_data(dtype, (37,), seed, kind)


def _reversed(dtype, seed, kind, i):
    if i == 0:
        return make_data(dtype, (1001,), seed, kind)[::-1]  # negative stride
    if i == 1:
        return make_data(dtype, (3003,), seed, kind)[::3]  # stride of three items
    return make_data(dtype, (2002,), seed, kind)[1001:][::-1]


LAYOUTS = {
    "empty": _contiguous((0,)),
    "one": _contiguous((1,)),
    "seven": _contiguous((7,)),
    "n1023": _contiguous((1023,)),
    "n4097": _contiguous((4097,)),
    "rows": _broadcast([(3, 4), (4,), (3, 1)]),
    "outer": _broadcast([(5, 1), (1, 6), (6,)]),
    "transposed": _transposed,
    "reversed": _reversed,
    "big": _contiguous((100003,)),  # past the serial threshold: runs on the thread pool
}


# --------------------------------------------------------------------------------------
# The cases: expression x operand dtypes (x every layout)
# --------------------------------------------------------------------------------------

B, I32, I64, F32, F64 = (np.dtype(t) for t in (np.bool_, np.int32, np.int64, np.float32, np.float64))
ALL = [B, I32, I64, F32, F64]
NUM = [I32, I64, F32, F64]
INTS = [I32, I64]
FLOATS = [F32, F64]
MIXED = [(B, I32), (B, F32), (I32, I64), (I32, F32), (I64, F32), (F32, F64), (I32, F64), (I64, F64), (B, F64)]


def _pairs(dtypes, mixed=True):
    out = [(d, d) for d in dtypes]
    if mixed:
        out += [m for m in MIXED if m[0] in dtypes and m[1] in dtypes]
    return out


CASES = []


def case(exprs, dtype_sets, kinds=("edges", "edges", "edges")):
    for expr in exprs:
        for dts in dtype_sets:
            dts = dts if isinstance(dts, tuple) else (dts,)
            CASES.append((expr, dts, kinds))


# Arithmetic. bool - bool, bool // bool and bool % bool are refused by kiln (NumPy: int8).
case(["a + b", "a * b"], _pairs(ALL))
case(["a - b", "a // b", "a % b", "a + b * a - b", "(a - b) * (a + b)"],
     _pairs(NUM) + [(B, I32), (B, F64)])
case(["a / b"], _pairs(ALL))
case(["-a", "abs(a) - a", "square(a)", "sign(a)", "negative(a) + 1"], NUM)
case(["abs(a)"], ALL)
case(["reciprocal(a)"], FLOATS)
# Comparisons and logic.
case(["a < b", "a <= b", "a > b", "a >= b", "a == b", "a != b"], _pairs(ALL))
case(["(a < b) | (a == b)", "(a > 0) & (b < 0)", "(a >= b) ^ (b >= 1)", "~(a != b)"],
     [(F64, F64), (I32, F32), (B, I64)])
# Selection, clipping, activations.
case(["where(a > b, a, b)", "minimum(a, b)", "maximum(a, b)", "fmin(a, b)", "fmax(a, b)"], _pairs(ALL))
case(["where(c, a, b)"], [(F64, F64, B), (I32, F32, B), (B, B, B), (I64, I32, B), (F32, F32, F32)])
case(["where(a, b, c)"], [(F64, I32, F32), (I32, F64, F64)])
case(["clip(a, -2, 3)", "clip(a, -2.5, 2.5)", "relu(a)", "relu(a - 1) * 2"], NUM)
case(["clip(a, b, c)", "clip(a, b, 3)"], [(F64, F64, F64), (I32, I32, I32), (F32, F32, F32), (I32, F32, I64)])
case(["sigmoid(a)"], NUM)
# Math functions: ints compute in float64, as NumPy.
case(["sqrt(a)", "cbrt(a)", "exp(a)", "exp2(a)", "expm1(a)", "log(a)", "log2(a)", "log10(a)", "log1p(a)",
      "sin(a)", "cos(a)", "tan(a)", "arctan(a)", "sinh(a)", "cosh(a)", "tanh(a)", "arcsinh(a)", "arccosh(a)",
      "floor(a)", "ceil(a)", "trunc(a)"], NUM)
case(["arcsin(a)", "arccos(a)", "arctanh(a)"], NUM, kinds=("small",))
case(["isnan(a)", "isinf(a)", "isfinite(a)"], ALL)
case(["arctan2(a, b)", "hypot(a, b)", "copysign(a, b)"], _pairs(NUM))
case(["a ** b", "power(a, 2)", "a ** 3", "a ** 0.5", "a ** -1"], _pairs(FLOATS))
case(["a ** (b % 5)", "power(a, 3)", "a ** 0"], _pairs(INTS))
case(["sqrt(a * a + b * b)", "exp(-a * a) * cos(b)", "log(abs(a) + 1) - sin(b) / 2"], _pairs(FLOATS))
# Integer division edges: zero divisors, negatives, min // -1.
case(["a // 3", "a % -3", "a // -1", "a % -1", "a // 0", "a % 0", "(a // b) * b + a % b"], INTS)
# Bitwise on ints and bools.
case(["a & b", "a | b", "a ^ b", "(a & 255) ^ (b | 16)"], _pairs([B, I32, I64]))
case(["~a", "~a & a"], [B, I32, I64])
# Casts.
case(["float64(a)", "float32(a)", "bool(a)", "float32(a) * 2.5", "bool(a) | bool(b)"], _pairs(ALL, mixed=False))
case(["int64(a)", "int32(a)", "int32(a) + int64(b)"], _pairs([B, I32, I64]))
case(["int32(where(isfinite(a), clip(a, -1e9, 1e9), 0))", "int64(where(isfinite(a), clip(a, -1e15, 1e15), 0))",
      "int32(floor(where(isfinite(a), clip(a, -1e9, 1e9), 0)))"], FLOATS)
case(["float64(a > 0) + int32(b > 0)", "int64(a > b) + 1"], [(F64, F64), (I32, F32)])
# Python-scalar literals: value-based casting, as NumPy 1.24.
case(["a * 2.5", "a + 3", "a + 1.5", "a + 3000000000", "a - -2147483648", "a - 2147483648", "a + True",
      "a * 1e300", "a / 2", "(a > 0) + 1", "where(a > 0, a, 0)", "where(a > 0, 1, 0)", "where(a > 0, 1.5, a)",
      "clip(a, 0, 1.5)", "maximum(a, 0.5)", "a * 0 + 7", "a + (2 * 3)", "a * -0.0", "a + -1"], NUM)
case(["a // 2", "a % -3", "a ** 2"], NUM)
case(["a + 1", "a * 2.5", "a & True", "a | False", "(a + 1) * 0.5", "where(a, 1, 0)", "where(a, 1.5, 0)"], [B])


def _case_id(c):
    expr, dts, _ = c
    return f"{expr} [{','.join(d.name for d in dts)}]"


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("expr,dtypes,kinds", CASES, ids=[_case_id(c) for c in CASES])
def test_matches_numpy(expr, dtypes, kinds, layout):
    make = LAYOUTS[layout]
    seed = hash((expr, layout)) & 0xFFFF  # varies the edge values' positions per case
    arrays = {name: make(dt, seed + 7 * i, kinds[min(i, len(kinds) - 1)], i)
              for i, (name, dt) in enumerate(zip("abc", dtypes))}
    want = numpy_eval(expr, **arrays)
    for isa, got in in_every_isa(lambda: kiln_eval(expr, **arrays)):
        assert_same(got, want, expr, context=f"dtypes {[d.name for d in dtypes]} layout {layout} isa {isa}")
