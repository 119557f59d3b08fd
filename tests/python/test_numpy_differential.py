"""kiln against NumPy 1.24, through the C ABI.

Every case wraps NumPy arrays zero-copy (byte strides, so transposed, strided and
reversed views go in as they are), evaluates an expression with kiln_eval under every
SIMD instruction set the CPU has, copies the result out and compares values AND dtype
with NumPy evaluating the same text. numexpr is a second reference for a few float64
expressions.

Run with Debian's interpreter, which has numpy 1.24, numexpr and pytest:

    /usr/bin/python3 -m pytest tests/python/test_numpy_differential.py

The library is $KILN_LIBRARY, else build/libkiln.so under the repository root.

Intentional divergences are not tested against NumPy: 0-d inputs (kiln treats them as
arrays, not scalars), bool operands where NumPy would return int8/float16 (a TypeError
in kiln: checked as such below), integer ** negative integer, integer reciprocal.
Transcendental functions are compared within a few ulp; everything else exactly, NaN
positions (not NaN payloads) and the sign of zero included.
"""

import ctypes
import os
import pathlib
import re
import zlib

import pytest

np = pytest.importorskip("numpy")  # the first python3 on PATH may lack it: use /usr/bin/python3

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
    return None


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
    if lib.kiln_array_size(handle) == 0:
        return np.empty(shape, dtype)
    lo = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    hi = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0) + dtype.itemsize
    buf = (ctypes.c_char * (hi - lo)).from_address(lib.kiln_array_data(handle) + lo)
    return np.ndarray(shape, dtype, buffer=buf, offset=-lo, strides=strides).copy()


def kiln_eval(expr, out=None, **arrays):
    """Evaluates expr over the named NumPy arrays. Returns a NumPy copy of the result, or
    `out` (a NumPy array kiln wrote in place) when given. Raises KilnError."""
    keep = list(arrays.values())  # the wrapped memory must outlive the handles
    handles = []
    out_handle = None
    try:
        handles = [_wrap(a) for a in keep]
        out_handle = _wrap(out) if out is not None else None
        n = len(handles)
        names = (ctypes.c_char_p * max(n, 1))(*[k.encode() for k in arrays])
        hs = (ctypes.c_void_p * max(n, 1))(*[h.value for h in handles])
        result = ctypes.c_void_p()
        status = lib.kiln_eval(expr.encode(), n, names, hs, out_handle, ctypes.byref(result))
        if status != KILN_OK:
            raise KilnError(status, lib.kiln_last_error().decode())
        if out is not None:
            assert not result.value, "kiln_eval with out must set *result to NULL"
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
    assert lib.kiln_set_simd_isa(b"no-such-isa") == KILN_ERROR_BAD_ARGUMENT
    message = lib.kiln_last_error().decode()
    m = re.search(r"available:([^)]*)\)", message)
    assert m, message
    return m.group(1).split()


ISAS = _available_isas()


def in_every_isa(fn):
    """[(isa, fn())] for each SIMD instruction set this CPU has."""
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
    dt = np.dtype(dt)

    def cast(x):
        # np.float64(array of one element) would give a scalar: keep arrays arrays, and
        # Python scalars NumPy scalars (which NumPy 1.24 casts by value, like kiln).
        return x.astype(dt) if isinstance(x, np.ndarray) else dt.type(x)
    return cast


NUMPY_NS = {name: getattr(np, name) for name in (
    "add", "subtract", "multiply", "divide", "floor_divide", "remainder", "power", "negative", "invert",
    "bitwise_and", "bitwise_or", "bitwise_xor", "less", "less_equal", "greater", "greater_equal", "equal",
    "not_equal", "sqrt", "cbrt", "square", "reciprocal", "exp", "exp2", "expm1", "log", "log2", "log10",
    "log1p", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh", "arcsinh",
    "arccosh", "arctanh", "floor", "ceil", "trunc", "sign", "copysign", "hypot", "minimum", "maximum", "fmin",
    "fmax", "isnan", "isinf", "isfinite", "where", "clip", "logical_and", "logical_or", "logical_xor",
    "logical_not", "rint", "fmod", "logaddexp", "logaddexp2", "heaviside", "nan_to_num", "fabs", "signbit",
    "deg2rad", "rad2deg", "radians", "degrees", "round", "around", "isclose", "allclose", "left_shift",
    "right_shift")}
NUMPY_NS.update(
    abs=np.absolute,
    relu=lambda x: np.maximum(x, 0),
    # Integer operands compute in float64 (as every float function does): -x must not wrap.
    sigmoid=lambda x: 1 / (1 + np.exp(-(x if np.asarray(x).dtype.kind == "f" else np.asarray(x, np.float64)))),
    bool=_cast(np.bool_), int32=_cast(np.int32), int64=_cast(np.int64),
    float32=_cast(np.float32), float64=_cast(np.float64),
    inf=float("inf"), nan=float("nan"),
)


def numpy_eval(expr, **arrays):
    with np.errstate(all="ignore"):
        return np.asarray(eval(expr, {"__builtins__": {}}, {**NUMPY_NS, **arrays}))  # noqa: S307 - our own texts


# --------------------------------------------------------------------------------------
# Comparison: exact for arithmetic, a few ulp for transcendental functions
# --------------------------------------------------------------------------------------

APPROX_FUNCS = ("exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "arcsin",
                "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "cbrt",
                "sigmoid", "power", "hypot", "sqrt", "logaddexp", "logaddexp2")
# The sign of a zero result is not pinned down for min/max of 0.0 and -0.0.
ZERO_SIGN_FREE = ("minimum", "maximum", "fmin", "fmax", "clip", "relu")


def _uses(expr, names):
    return any(re.search(r"\b%s\s*\(" % n, expr) for n in names) or ("**" in expr and "power" in names)


def assert_same(got, want, expr, context="", inputs=(), abs_scale=0.0):
    """got (kiln) equals want (NumPy): dtype, shape, values. For expressions with
    transcendental functions values may differ by a few ulp of the result, or of
    abs_scale where the expression cancels (log(x) - sin(y) near zero)."""
    where = f"{expr} {context}"
    assert got.dtype == want.dtype, f"{where}: dtype {got.dtype}, NumPy {want.dtype}"
    assert got.shape == want.shape, f"{where}: shape {got.shape}, NumPy {want.shape}"
    if got.dtype.kind != "f":
        bad = got != want
        assert not bad.any(), _report(where, got, want, bad)
        return
    gn, wn = np.isnan(got), np.isnan(want)
    bad = gn != wn
    assert not bad.any(), _report(where + " (NaN positions)", got, want, bad)
    g, w = np.where(gn, 0, got), np.where(wn, 0, want)
    if not _uses(expr, APPROX_FUNCS):
        bad = g != w
        if not _uses(expr, ZERO_SIGN_FREE):
            bad |= (g == 0) & (w == 0) & (np.signbit(g) != np.signbit(w))
        assert not bad.any(), _report(where, got, want, bad)
        return
    single = got.dtype == np.float32 or any(a.dtype == np.float32 for a in inputs)
    rtol = 1e-6 if single else 4e-15
    # Subnormal results are compared absolutely (see EXP_UNDERFLOW_BUG, its own test).
    atol = float(np.finfo(np.float32 if single else np.float64).tiny) * 1e4
    with np.errstate(all="ignore"):
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        inf_mismatch = (np.isinf(g64) | np.isinf(w64)) & (g64 != w64)
        err = np.abs(g64 - w64)
        bad = inf_mismatch | (~np.isinf(w64) & (err > rtol * (np.abs(w64) + abs_scale) + atol))
    assert not bad.any(), _report(where + " (within a few ulp)", got, want, bad)


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
               1e300, -1e300, 7.0, -7.0, 0.1, 1e-40, -3.5e38, 88.0, -87.5, 700.0, -700.0]


def make_data(dtype, shape, seed, kind="edges"):
    """A fresh C-contiguous array. kind: "edges" (NaN, Inf, -0.0, subnormals, huge values,
    integer min/max, 0, -1 first, then a spread over several decades), "moderate" (the
    edges, with the spread kept within |x| < 80 so exp() stays clear of EXP_OVERFLOW_BUG's
    window: that bug has its own test), "small" (|x| <= 3) or "positive"."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape, dtype=np.int64))
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return (rng.random(n) < 0.5).reshape(shape)
    if dtype.kind == "i":
        info = np.iinfo(dtype)
        v = rng.integers(-100, 101, n).astype(dtype)
        if kind == "positive":
            v = np.abs(v) + 1
        elif kind != "small":
            edges = np.array([info.min, info.max, 0, -1, 1, info.min + 1, info.max - 1, 2, -2, 7, -7], dtype)
            edges = np.roll(edges, seed % len(edges))
            v[: min(n, len(edges))] = edges[: min(n, len(edges))]
        return v.reshape(shape)
    if kind == "small":
        v = rng.uniform(-3, 3, n)
    elif kind == "positive":
        v = rng.uniform(0, 50, n) + 1e-3
    else:
        v = rng.standard_normal(n) * 10.0 ** rng.integers(-2, 3, n)
        if kind == "moderate":
            v = np.clip(v, -80, 80)
        # Exact integers and halves, where floor, remainder and friends have their edges.
        k = np.arange(n)
        v[(k % 13) == 5] = np.round(v[(k % 13) == 5])
        v[(k % 17) == 3] = np.round(v[(k % 17) == 3]) + 0.5
        edges = np.roll(np.array(FLOAT_EDGES), seed % len(FLOAT_EDGES))
        v[: min(n, len(edges))] = edges[: min(n, len(edges))]
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
        return make_data(dtype, (3003,), seed, kind)[::3]  # a stride of three items
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
# The cases: expression x operand dtypes, each over every layout
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


CASES = []  # (expr, dtypes, data kind, abs_scale)


def case(exprs, dtype_sets, kind="edges", abs_scale=0.0):
    for expr in exprs:
        for dts in dtype_sets:
            CASES.append((expr, dts if isinstance(dts, tuple) else (dts,), kind, abs_scale))


# Arithmetic. bool - bool, bool // bool and bool % bool are refused by kiln (NumPy: int8).
case(["a + b", "a * b", "a / b"], _pairs(ALL))
case(["a - b", "a // b", "a % b", "a + b * a - b", "(a - b) * (a + b)"], _pairs(NUM) + [(B, I32), (B, F64)])
case(["fmod(a, b)", "fmod(a, 3)", "fmod(a, -2.5)", "fmod(7, b)"], _pairs(NUM) + [(B, I32), (B, F64)])
case(["-a", "abs(a) - a", "square(a)", "sign(a)", "negative(a) + 1"], NUM)
case(["abs(a)"], ALL)
case(["+a"], NUM)
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
# NumPy's other element-wise functions. logaddexp cancels near zero (the larger operand
# plus a term of at most ln 2): a few ulp of 1 there, as NumPy's own formula.
case(["logaddexp(a, b)", "logaddexp2(a, b)", "logaddexp(a, 1)"], _pairs(NUM), abs_scale=1.0)
case(["heaviside(a, b)", "heaviside(a, 0.5)"], _pairs(NUM))
case(["fabs(a)", "deg2rad(a)", "rad2deg(a)", "radians(a) * 2", "degrees(a)"], NUM)
case(["nan_to_num(a)", "signbit(a)"], ALL)
# Literal operands are folded once, by the kernels (a call on one element).
case(["where(a > 0, nan_to_num(nan), nan_to_num(-inf))", "where(a > 0, round(2.675, 2), heaviside(0.0, 0.25))",
      "where(a > 0, round(-2.5), fabs(-3) + signbit(-0.0))"], ALL)
case(["round(a)", "round(a, 2)", "around(a, -1)", "round(a, decimals=3)", "round(a, -2)", "round(a * 1000, -3)",
      "round(a, 40)", "round(a, -39)", "round(a, 308)", "round(a, 309)", "round(a, -309)"], NUM)
case(["isclose(a, b)", "isclose(a, b, equal_nan=True)", "isclose(a, b, 1e-3, 0.5)", "allclose(a, b)",
      "allclose(a, a, equal_nan=True)", "isclose(a, 1.0, atol=0.5)"], _pairs(ALL))
# Math functions; integer operands compute in float64, as NumPy.
case(["sqrt(a)", "cbrt(a)", "log(a)", "log2(a)", "log10(a)", "log1p(a)", "sin(a)", "cos(a)", "tan(a)",
      "arctan(a)", "sinh(a)", "cosh(a)", "tanh(a)", "arcsinh(a)", "arccosh(a)", "floor(a)", "ceil(a)",
      "trunc(a)", "rint(a)"], NUM)
case(["exp(a)", "exp2(a)", "expm1(a)"], NUM, kind="moderate")
case(["arcsin(a)", "arccos(a)", "arctanh(a)"], NUM, kind="small")
case(["isnan(a)", "isinf(a)", "isfinite(a)", "logical_not(a)"], ALL)
case(["logical_and(a, b)", "logical_or(a, b)", "logical_xor(a, b)"], _pairs(ALL))
case(["arctan2(a, b)", "hypot(a, b)", "copysign(a, b)"], _pairs(NUM))
case(["a ** b", "power(a, 2)", "a ** 3", "power(a, 0.5)", "a ** -1"], _pairs(FLOATS))
case(["a ** (b % 5)", "a ** (b % 64)", "power(a, 3)", "a ** 0"], _pairs(INTS))  # % 64: long exponents, wrapping
case(["sqrt(a * a + b * b)", "exp(-a * a) * cos(b)"], _pairs(FLOATS), kind="moderate")
case(["log(abs(a) + 1) - sin(b) / 2"], _pairs(FLOATS), abs_scale=1.0)
# Shifts: by the width or more, by negative amounts (NumPy: 0, or -1 for negatives shifted right).
case(["a << b", "a >> b", "a << (b % 70)", "a >> (b % 70)", "left_shift(a, 3) + (a >> 1)", "a << 2 >> 1",
      "right_shift(a, -1)", "1 << b % 40"], _pairs(INTS))
case(["a >> 1", "a << 2"], [B])  # a Python int takes bools to int64, in NumPy too
# Integer division: zero divisors, negatives, min // -1.
case(["a // 3", "a % -3", "a // -1", "a % -1", "a // 0", "a % 0"], INTS)
case(["(a // b) * b + a % b"], _pairs(INTS))
# Bitwise, on ints and bools.
case(["a & b", "a | b", "a ^ b", "(a & 255) ^ (b | 16)"], _pairs([B, I32, I64]))
case(["~a", "~a & a"], [B, I32, I64])
# Casts.
case(["float64(a)", "float32(a)", "bool(a)", "float32(a) * 2.5", "bool(a) | bool(b)"], _pairs(ALL, mixed=False))
case(["int64(a)", "int32(a)", "int32(a) + int64(b)"], _pairs([B, I32, I64]))
case(["int32(where(isfinite(a), clip(a, -1e9, 1e9), 0))", "int64(where(isfinite(a), clip(a, -1e15, 1e15), 0))",
      "int32(floor(where(isfinite(a), clip(a, -1e9, 1e9), 0)))"], FLOATS)
case(["float64(a > 0) + int32(b > 0)", "int64(a > b) + 1"], [(F64, F64), (I32, F32)])
case(["a + float32(2)", "a * int64(3)", "a + bool(1)"], [I32, F32, F64])
# Python-scalar literals: value-based casting, as NumPy 1.24.
case(["a * 2.5", "a + 3", "a + 1.5", "a + 3000000000", "a - -2147483648", "a - 2147483648", "a + True",
      "a * 1e300", "a / 2", "(a > 0) + 1", "where(a > 0, a, 0)", "where(a > 0, 1, 0)", "where(a > 0, 1.5, a)",
      "clip(a, 0, 1.5)", "maximum(a, 0.5)", "a * 0 + 7", "a + (2 * 3)", "a * -0.0", "a + -1", "a + 65535",
      "a + 65536", "a + -32768", "a + -32769", "a * 100000", "a // 2", "a % -3", "a ** 2", "a * 3.5e38"], NUM)
case(["a + 2 ** 40", "a + (2147483647 + 1)", "a * (1e300 * 1)", "a + 2 ** 16"], [I32, F32])
case(["a + 1", "a * 2.5", "a & True", "a | False", "(a + 1) * 0.5", "where(a, 1, 0)", "where(a, 1.5, 0)",
      "clip(a, 0, 1)", "maximum(a, 0.5)"], [B])


def _params():
    params = []
    for expr, dts, kind, abs_scale in CASES:
        name = f"{expr} [{','.join(d.name for d in dts)}]"
        for layout in LAYOUTS:
            params.append(pytest.param(expr, dts, kind, abs_scale, layout, id=f"{name}-{layout}"))
    return params


@pytest.mark.parametrize("expr,dtypes,kind,abs_scale,layout", _params())
def test_matches_numpy(expr, dtypes, kind, abs_scale, layout):
    make = LAYOUTS[layout]
    seed = zlib.crc32(f"{expr}/{layout}".encode()) & 0xFFFF  # moves the edge values around, reproducibly
    arrays = {name: make(dt, seed + 7 * i, kind, i) for i, (name, dt) in enumerate(zip("abc", dtypes))}
    want = numpy_eval(expr, **arrays)
    for isa, got in in_every_isa(lambda: kiln_eval(expr, **arrays)):
        assert_same(got, want, expr, f"dtypes {[d.name for d in dtypes]} layout {layout} isa {isa}",
                    inputs=arrays.values(), abs_scale=abs_scale)


# Bools as a view of uint8 hold any byte; NumPy reads each nonzero one as true. kiln must
# too, and return 0s and 1s (NumPy itself passes raw bytes through where and max over a
# length-1 axis: compared as truths, as assert_same compares bools).
RAW_BOOL_EXPRS = ["a & b", "a | b", "a ^ b", "a == b", "a != b", "a < b", "a >= b", "~a", "a + b", "a * b", "a + 1",
                  "a * 2.5", "float32(a)", "int64(a) - 1", "where(a, 1.5, 0)", "where(a, b, a)", "maximum(a, b)",
                  "sum(a)", "max(a)", "min(a)", "argmax(a)", "argmin(a)", "mean(a)", "any(a)", "all(a)",
                  "sum(a, axis=0)", "max(a, axis=1)", "min(a, axis=0)", "argmax(a, axis=0)", "argmin(a, axis=1)",
                  "any(a, axis=1)", "all(a, axis=0)", "a @ b", "sum(a, axis=1)", "mean(a, axis=0)",
                  "mean(a, axis=1)", "sum(a & b)", "sum(a != b, axis=1)", "mean(a ^ b, axis=0)", "logical_and(a, b)",
                  "logical_or(a, 2)", "logical_xor(a, b)", "logical_not(a)"]


@pytest.mark.parametrize("expr", RAW_BOOL_EXPRS)
@pytest.mark.parametrize("shape", [(1, 37), (37, 1), (67, 67)])
def test_bools_with_bytes_other_than_one(expr, shape):
    rng = np.random.default_rng(zlib.crc32(expr.encode()))
    a, b = (np.where(rng.random(shape) < 0.5, 0, rng.integers(1, 256, shape)).astype(np.uint8).view(np.bool_)
            for _ in range(2))
    if expr == "a @ b":
        b = b.T.copy()
    reductions = {name: getattr(np, name) for name in ("sum", "max", "min", "argmax", "argmin", "mean", "any", "all")}
    want = numpy_eval(expr, a=a, b=b, **reductions)
    for isa, got in in_every_isa(lambda: kiln_eval(expr, a=a, b=b)):
        assert_same(got, want, expr, f"shape {shape} isa {isa}")
        if got.dtype == np.bool_:
            assert (got.view(np.uint8) <= 1).all(), f"{expr} shape {shape} isa {isa}: bool bytes other than 0 and 1"


# NumPy calls a view aligned whatever the stride of a length-1 axis (it never steps), and
# of any axis of an empty array; kiln reads such views in place as NumPy does.
@pytest.mark.parametrize("expr", ["a * 2", "sum(a, axis=0)", "a + b", "sum(b * b, axis=1)", "e + 1"])
def test_any_stride_on_a_length_1_axis(expr):
    base = np.arange(12.0)
    as_strided = np.lib.stride_tricks.as_strided
    a = as_strided(base, shape=(1, 5), strides=(3, 16))
    b = as_strided(base[1:], shape=(5, 1), strides=(8, 5))
    e = as_strided(base, shape=(0, 5), strides=(3, 5))
    assert a.flags.aligned and b.flags.aligned and e.flags.aligned
    want = numpy_eval(expr, a=a, b=b, e=e, sum=np.sum)
    for isa, got in in_every_isa(lambda: kiln_eval(expr, a=a, b=b, e=e)):
        assert_same(got, want, expr, f"isa {isa}")


# --------------------------------------------------------------------------------------
# Errors: where NumPy raises TypeError kiln says KILN_ERROR_TYPE; and kiln's documented
# refusals of bool operands NumPy would turn into int8/float16
# --------------------------------------------------------------------------------------

TYPE_ERRORS = [
    ("a & b", (F64, F64)), ("a | b", (F32, I32)), ("a ^ b", (I64, F64)), ("~a", (F32,)),
    ("-a", (B,)), ("a - b", (B, B)), ("invert(a)", (F64,)), ("bitwise_and(a, 1.5)", (I32,)),
    ("a << b", (F64, I32)), ("a >> 1.5", (I32,)),
]
KILN_ONLY_TYPE_ERRORS = [
    ("sqrt(a)", (B,)), ("a // b", (B, B)), ("a ** b", (B, B)), ("a % b", (B, B)), ("square(a)", (B,)),
    ("sign(a)", (B,)), ("exp(a)", (B,)), ("clip(a, True, False)", (B,)), ("relu(a)", (B,)), ("negative(a)", (B,)),
    ("rint(a)", (B,)), ("fmod(a, b)", (B, B)), ("round(a)", (B,)), ("logaddexp(a, b)", (B, B)),
    ("heaviside(a, b)", (B, B)), ("fabs(a)", (B,)), ("deg2rad(a)", (B,)), ("a << b", (B, B)),
]


@pytest.mark.parametrize("expr,dtypes", TYPE_ERRORS, ids=[e for e, _ in TYPE_ERRORS])
def test_type_errors_match_numpy(expr, dtypes):
    arrays = {name: make_data(dt, (5,), 1) for name, dt in zip("ab", dtypes)}
    with pytest.raises(TypeError):
        numpy_eval(expr, **arrays)
    with pytest.raises(KilnError) as info:
        kiln_eval(expr, **arrays)
    assert info.value.status == KILN_ERROR_TYPE
    for dt in dtypes:
        assert dt.name in info.value.message


@pytest.mark.parametrize("expr,dtypes", KILN_ONLY_TYPE_ERRORS, ids=[e for e, _ in KILN_ONLY_TYPE_ERRORS])
def test_bool_operands_numpy_would_widen_are_refused(expr, dtypes):
    arrays = {name: make_data(dt, (5,), 1) for name, dt in zip("ab", dtypes)}
    with pytest.raises(KilnError) as info:
        kiln_eval(expr, **arrays)
    assert info.value.status == KILN_ERROR_TYPE
    assert "bool" in info.value.message


def test_errors_name_what_is_wrong():
    a, b = np.ones((3, 4)), np.ones(5)
    with pytest.raises(KilnError) as info:
        kiln_eval("a + b", a=a, b=b)
    assert info.value.status == KILN_ERROR_SHAPE
    assert "(3, 4)" in info.value.message and "(5,)" in info.value.message
    with pytest.raises(KilnError) as info:
        kiln_eval("a + nope", a=a)
    assert info.value.status == KILN_ERROR_UNKNOWN_NAME and "'nope'" in info.value.message
    with pytest.raises(KilnError) as info:
        kiln_eval("a +* 2", a=a)
    assert info.value.status == KILN_ERROR_PARSE and "position 3" in info.value.message


# --------------------------------------------------------------------------------------
# out=: aliasing, partial overlap, strided and reversed outs, same_kind casts
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [I32, I64, F32, F64], ids=str)
@pytest.mark.parametrize("n", [1, 7, 4097, 100003])
def test_out_aliasing_an_input(dtype, n):
    a = make_data(dtype, (n,), 3, "small")
    b = make_data(dtype, (n,), 4, "small")
    want = numpy_eval("a * 2 + b", a=a, b=b)
    kiln_eval("a * 2 + b", out=a, a=a, b=b)  # a = a*2 + b, in a's own buffer
    assert_same(a, want, "a * 2 + b (into a)")


@pytest.mark.parametrize("n", [2, 9, 4097, 100003])
def test_out_overlapping_an_input_partially(n):
    base = make_data(F64, (n,), 5)
    want = base.copy()
    np.add(want[:-1], 1, out=want[1:])
    got = base.copy()
    kiln_eval("x + 1", out=got[1:], x=got[:-1])
    assert_same(got, want, "out=a[1:], x=a[:-1]")

    # A multiplication tells copy-first from forward propagation.
    want = base.copy()
    np.multiply(want[:-1], 3, out=want[1:])
    got = base.copy()
    kiln_eval("x * 3", out=got[1:], x=got[:-1])
    assert_same(got, want, "out=a[1:], x=a[:-1], x * 3")

    # The other direction, and a full reversal of the same memory.
    want = base.copy()
    np.multiply(want[1:], 3, out=want[:-1])
    got = base.copy()
    kiln_eval("x * 3", out=got[:-1], x=got[1:])
    assert_same(got, want, "out=a[:-1], x=a[1:]")
    want = base.copy()
    np.subtract(want[::-1], want, out=want)
    got = base.copy()
    kiln_eval("x - y", out=got, x=got[::-1], y=got)
    assert_same(got, want, "out=a, x=a[::-1], y=a")


def test_out_aliasing_a_strided_view():
    base = make_data(F64, (40, 30), 6, "small")
    want = base.copy()
    v = want[:, ::2]
    np.add(v * 2, v.T[::-1].T, out=v)
    got = base.copy()
    gv = got[:, ::2]
    kiln_eval("a * 2 + r", out=gv, a=gv, r=gv[:, ::-1])
    assert_same(got, want, "a[:, ::2] = a * 2 + a[:, ::-1]")


@pytest.mark.parametrize("layout", ["transposed", "reversed", "strided"])
def test_out_into_non_contiguous_views(layout):
    if layout == "transposed":
        target = np.zeros((29, 37)).T
    elif layout == "reversed":
        target = np.zeros(1001)[::-1]
    else:
        target = np.zeros(3003)[::3]
    a = make_data(F64, target.shape, 7)
    b = make_data(F64, target.shape, 8)
    want = numpy_eval("where(a > b, a - b, b * 0.5)", a=a, b=b)
    kiln_eval("where(a > b, a - b, b * 0.5)", out=target, a=a, b=b)
    assert_same(target, want, "where(a > b, a - b, b * 0.5)", layout)


@pytest.mark.parametrize("result_dtype,out_dtype", [(F64, F32), (I64, I32), (B, F64), (I32, F64), (B, I32),
                                                    (I32, I64), (F32, F64)], ids=lambda d: d.name)
def test_out_casts_same_kind(result_dtype, out_dtype):
    a = make_data(result_dtype, (4097,), 9, "small")
    out = np.full(a.shape, 99, out_dtype)
    want = np.empty(a.shape, out_dtype)
    with np.errstate(all="ignore"):
        np.copyto(want, a if result_dtype == B else a * 2 - 1, casting="same_kind")
    kiln_eval("a" if result_dtype == B else "a * 2 - 1", out=out, a=a)
    assert_same(out, want, f"{result_dtype.name} result into {out_dtype.name} out")


@pytest.mark.parametrize("result_dtype,out_dtype", [(F64, I32), (F32, I64), (I32, B), (F64, B)],
                         ids=lambda d: d.name)
def test_out_refuses_other_kinds_and_is_untouched(result_dtype, out_dtype):
    a = make_data(result_dtype, (100,), 10, "small")
    assert not np.can_cast(result_dtype, out_dtype, casting="same_kind")
    out = np.full(a.shape, 1, out_dtype)
    before = out.copy()
    with pytest.raises(KilnError) as info:
        kiln_eval("a + a" if result_dtype != I32 else "a * 1", out=out, a=a)
    assert info.value.status == KILN_ERROR_TYPE
    assert result_dtype.name in info.value.message and out_dtype.name in info.value.message
    assert np.array_equal(out, before)


def test_out_broadcasts_like_numpy():
    a = make_data(F64, (4,), 11)
    out = np.zeros((3, 4))
    want = np.zeros((3, 4))
    np.multiply(a, 2, out=want)
    kiln_eval("a * 2", out=out, a=a)
    assert_same(out, want, "a * 2 into (3, 4)")
    wrong = np.full((5,), 7.0)
    with pytest.raises(KilnError) as info:
        kiln_eval("a * 2", out=wrong, a=a)
    assert info.value.status == KILN_ERROR_SHAPE
    assert np.all(wrong == 7.0)


# --------------------------------------------------------------------------------------
# The exp family at the edges of the float range (where xsimd's versions need help)
# --------------------------------------------------------------------------------------

def _top_binade(dtype, func):
    top = {"exp": np.log, "expm1": np.log, "exp2": np.log2}[func](np.finfo(dtype).max.astype(np.float64))
    return np.linspace(top - 0.6, top - 1e-6 * top, 4001).astype(dtype)


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("func", ["exp", "exp2", "expm1"])
def test_exp_family_finite_up_to_the_largest_float(func, dtype):
    x = _top_binade(dtype, func)
    want = numpy_eval(f"{func}(a)", a=x)
    assert np.isfinite(want).all()
    for isa, got in in_every_isa(lambda: kiln_eval(f"{func}(a)", a=x)):
        assert_same(got, want, f"{func}(a)", f"isa {isa}", inputs=[x])


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("func", ["exp", "exp2"])
def test_exp_family_keeps_subnormal_results(func, dtype):
    tiny = np.log(np.finfo(dtype).tiny.astype(np.float64))
    if func == "exp2":
        tiny /= np.log(2)
    x = np.linspace(tiny - 20, tiny - 0.5, 2001).astype(dtype)
    want = numpy_eval(f"{func}(a)", a=x)
    got = kiln_eval(f"{func}(a)", a=x)
    assert ((got == 0) == (want == 0)).all(), f"{func}: {np.sum((got == 0) != (want == 0))} results flushed to zero"
    with np.errstate(all="ignore"):  # zeros on both sides divide to nan, which the mask drops
        rel = np.abs(got.astype(np.float64) - want) / want.astype(np.float64)
    assert (rel[want > np.finfo(dtype).smallest_subnormal * 2 ** 20] < 1e-4).all()


def test_exp_family_just_inside_the_range_is_accurate():
    # Below the buggy top half-binade and above the subnormal range kiln is within ulps.
    for dtype, lo, hi in [(F64, -708.0, 709.0), (F32, -87.0, 88.3)]:
        x = np.linspace(lo, hi, 20001).astype(dtype)
        want = numpy_eval("exp(a)", a=x)
        got = kiln_eval("exp(a)", a=x)
        assert_same(got, want, "exp(a)", dtype.name, inputs=[x])


def test_power_half_is_numpy_sqrt():
    a = np.array([-np.inf, -0.0, -1.0, 4.0, np.inf, np.nan])
    want = numpy_eval("a ** 0.5", a=a)
    got = kiln_eval("a ** 0.5", a=a)
    assert_same(got, want, "a ** 0.5")
    assert np.array_equal(np.signbit(got), np.signbit(want))


# --------------------------------------------------------------------------------------
# numexpr as a second reference (float64)
# --------------------------------------------------------------------------------------

NUMEXPR_CASES = [
    "a * b + 2 * a - b / 3",
    "where(a > b, a, b) * 2",
    "sqrt(a * a + b * b)",
    "exp(-a * a / 100) * cos(b)",
    "log(abs(a) + 1) + arctan2(a, b)",
    "(a > 0) & (b < 1) | (a == b)",
    "sin(a) ** 2 + cos(a) ** 2",
    "tanh(a / 10) - a ** 3 / 1000",
]


@pytest.mark.parametrize("expr", NUMEXPR_CASES)
@pytest.mark.parametrize("layout", ["n4097", "transposed", "reversed", "big"])
def test_matches_numexpr(expr, layout):
    numexpr = pytest.importorskip("numexpr")
    make = LAYOUTS[layout]
    arrays = {name: make(F64, 21 + i, "moderate", i) for i, name in enumerate("ab")}
    with np.errstate(all="ignore"):
        want = np.asarray(numexpr.evaluate(expr, local_dict=dict(arrays)))
    got = kiln_eval(expr, **arrays)
    assert_same(got, want, expr, f"numexpr, layout {layout}", inputs=arrays.values(), abs_scale=1.0)
