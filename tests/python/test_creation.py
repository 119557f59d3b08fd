"""kiln's creation functions against NumPy 1.24, through the C ABI and expression strings.

arange, linspace, eye, full, zeros, ones and the *_like forms must give NumPy's shape,
dtype and values bit for bit: arange's length and its float rounding (NumPy fills
start + i * delta with delta the difference of the first two elements, in the dtype's own
arithmetic), linspace's endpoints and its step (and the floor for integer dtypes), eye's
diagonals. Also: the same inside expressions (fused, never stored), under every SIMD
instruction set, and the C ABI's errors.

Run from the repository root with Debian's interpreter (numpy 1.24, pytest):

    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python/test_creation.py
"""

import ctypes
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_numpy_differential as nd  # noqa: E402  (the ctypes layer)

np = nd.np
lib = nd.lib
c_i64p = ctypes.POINTER(ctypes.c_int64)
VP = ctypes.POINTER(ctypes.c_void_p)

lib.kiln_arange.restype = ctypes.c_int
lib.kiln_arange.argtypes = [ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_int, VP]
lib.kiln_linspace.restype = ctypes.c_int
lib.kiln_linspace.argtypes = [ctypes.c_double, ctypes.c_double, ctypes.c_int64, ctypes.c_int, ctypes.c_int, VP]
lib.kiln_eye.restype = ctypes.c_int
lib.kiln_eye.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int, VP]
lib.kiln_full.restype = ctypes.c_int
lib.kiln_full.argtypes = [ctypes.c_int, ctypes.c_int, c_i64p, ctypes.c_double, VP]
lib.kiln_full_int.restype = ctypes.c_int
lib.kiln_full_int.argtypes = [ctypes.c_int, ctypes.c_int, c_i64p, ctypes.c_int64, VP]
lib.kiln_zeros.restype = ctypes.c_int
lib.kiln_zeros.argtypes = [ctypes.c_int, ctypes.c_int, c_i64p, VP]
lib.kiln_ones.restype = ctypes.c_int
lib.kiln_ones.argtypes = [ctypes.c_int, ctypes.c_int, c_i64p, VP]

# NumPy's own overflow warnings (linspace from 1e308 to -1e308) are expected noise.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

F32, F64, I32, I64, B = (np.dtype(t) for t in (np.float32, np.float64, np.int32, np.int64, np.bool_))


def call(fn, *args):
    """A kiln creation call; returns a NumPy copy of the result or raises KilnError."""
    out = ctypes.c_void_p()
    status = fn(*args, ctypes.byref(out))
    if status != nd.KILN_OK:
        raise nd.KilnError(status, lib.kiln_last_error().decode())
    try:
        return nd._to_numpy(out)
    finally:
        lib.kiln_array_release(out)


def shape_args(shape):
    return len(shape), (ctypes.c_int64 * max(len(shape), 1))(*shape)


def same(kiln, numpy):
    """Shape, dtype and every bit (NaN positions and signed zeros included)."""
    assert kiln.dtype == numpy.dtype, (kiln.dtype, numpy.dtype)
    assert kiln.shape == numpy.shape, (kiln.shape, numpy.shape)
    if numpy.dtype.kind == "f":
        assert np.array_equal(kiln.reshape(-1).view(np.uint8), numpy.reshape(-1).view(np.uint8)), np.flatnonzero(kiln != numpy)[:10]
    else:
        assert np.array_equal(kiln, numpy)


ARANGES = [
    (0, 10, 1), (0, 10, 3), (10, 0, -3), (0.1, 1e5, 0.3), (0.5, 5, 1), (-2.5, 2.5, 0.1), (1e-3, 1.0, 1e-3),
    (0, 1e6, 1.1), (3, 3, 1), (5, 0, 1), (0, 1, 0.75), (1e15, 1e15 + 100, 7.5), (-1, -1e4, -0.37),
]


@pytest.mark.parametrize("start,stop,step", ARANGES)
@pytest.mark.parametrize("dt", [F64, F32, I64, I32])
def test_arange_c_abi(start, stop, step, dt):
    if dt == I32 and max(abs(start), abs(stop)) > 2**31:
        pytest.skip("float to int32 out of range: undefined in C, NumPy and kiln differ")
    expected = np.arange(start, stop, step, dtype=dt)
    same(call(lib.kiln_arange, start, stop, step, nd.CODES[dt]), expected)


@pytest.mark.parametrize("text,expected", [
    ("arange(10)", np.arange(10)),
    ("arange(2, 20, 3)", np.arange(2, 20, 3)),
    ("arange(-7, 7, 2, dtype=int32)", np.arange(-7, 7, 2, dtype=np.int32)),
    ("arange(0.1, 1e5, 0.3)", np.arange(0.1, 1e5, 0.3)),
    ("arange(0, 1e6, 1.1, dtype=float32)", np.arange(0, 1e6, 1.1, dtype=np.float32)),
    ("arange(start=1, stop=2, step=0.125)", np.arange(1, 2, 0.125)),
    ("arange(5.0)", np.arange(5.0)),
    ("linspace(0, 1, 11)", np.linspace(0, 1, 11)),
    ("linspace(-3.5, 3, 5, dtype=int32)", np.linspace(-3.5, 3, 5, dtype=np.int32)),
    ("linspace(0, 10, 4, endpoint=False)", np.linspace(0, 10, 4, endpoint=False)),
    ("linspace(2, 3, 1)", np.linspace(2, 3, 1)),
    ("linspace(2, 3, 0)", np.linspace(2, 3, 0)),
    ("linspace(1, 1e-300, 7)", np.linspace(1, 1e-300, 7)),
    ("linspace(0, 5e-324, 5)", np.linspace(0, 5e-324, 5)),
    ("linspace(0, 1, 1000, dtype=float32)", np.linspace(0, 1, 1000, dtype=np.float32)),
    ("eye(4)", np.eye(4)),
    ("eye(3, 5, k=1, dtype=int64)", np.eye(3, 5, k=1, dtype=np.int64)),
    ("eye(5, 3, k=-2, dtype=bool)", np.eye(5, 3, k=-2, dtype=bool)),
    ("identity(3, dtype=float32)", np.identity(3, dtype=np.float32)),
    ("zeros((2, 3))", np.zeros((2, 3))),
    ("ones(4, dtype=int32)", np.ones(4, dtype=np.int32)),
    ("full((2, 2), 7)", np.full((2, 2), 7)),
    ("full((3,), -0.0)", np.full((3,), -0.0)),
    ("full((2, 1), 1.5, dtype=int64)", np.full((2, 1), 1.5, dtype=np.int64)),
    ("full((), True)", np.full((), True)),
    ("zeros((0, 3))", np.zeros((0, 3))),
    ("sin(arange(1000) * 0.01)", np.sin(np.arange(1000) * 0.01)),
    ("arange(3) + zeros((4, 3), dtype=float32)", np.arange(3) + np.zeros((4, 3), dtype=np.float32)),
    ("eye(6) * arange(6)", np.eye(6) * np.arange(6)),
    ("sum(arange(100001))", np.sum(np.arange(100001))),
    ("sum(eye(7) * arange(7), axis=1)", np.sum(np.eye(7) * np.arange(7), axis=1)),
    ("linspace(0, 1, 5) ** 2", np.linspace(0, 1, 5) ** 2),
])
def test_expressions_match_numpy(text, expected):
    expected = np.asarray(expected)
    for isa, got in nd.in_every_isa(lambda: nd.kiln_eval(text)):
        if text.startswith("sin("):  # kiln's math is within 4 ulp (libmvec's bound on AVX2), not NumPy's bits
            assert got.dtype == expected.dtype, isa
            np.testing.assert_array_max_ulp(got, expected, maxulp=4)
        else:
            same(got, expected)


def test_like_forms_take_the_operand():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    same(nd.kiln_eval("zeros_like(x)", x=x), np.zeros_like(x))
    same(nd.kiln_eval("ones_like(x, dtype=int64)", x=x), np.ones_like(x, dtype=np.int64))
    same(nd.kiln_eval("full_like(x, 2.5)", x=x), np.full_like(x, 2.5))
    same(nd.kiln_eval("x - mean(x) + ones_like(sum(x, axis=0))", x=x),
         (x - np.mean(x) + np.ones_like(np.sum(x, axis=0))).astype(np.float32))


@pytest.mark.parametrize("start,stop,num,endpoint", [
    (0, 1, 50, 1), (0, 1, 50, 0), (-1e3, 1e3, 12345, 1), (5, -5, 7, 1), (1, 2, 1, 1), (1, 2, 1, 0), (0, 0, 5, 1),
    (1e308, -1e308, 9, 1), (0.1, 0.7, 6, 1),
])
@pytest.mark.parametrize("dt", [F64, F32, I64, I32])
def test_linspace_c_abi(start, stop, num, endpoint, dt):
    with np.errstate(over="ignore", invalid="ignore"):
        expected = np.linspace(start, stop, num, endpoint=bool(endpoint), dtype=dt)
    if dt.kind == "i" and not np.all(np.isfinite(np.linspace(start, stop, num, endpoint=bool(endpoint)))):
        pytest.skip("NumPy's cast of inf to int is undefined")
    same(call(lib.kiln_linspace, start, stop, num, endpoint, nd.CODES[dt]), expected)


@pytest.mark.parametrize("rows,cols,k", [(1, 1, 0), (4, 4, 0), (3, 7, 2), (7, 3, -1), (5, 5, 9), (5, 5, -9), (0, 3, 0)])
def test_eye_c_abi(rows, cols, k):
    for dt in (F64, I32, B):
        same(call(lib.kiln_eye, rows, cols, k, nd.CODES[dt]), np.eye(rows, cols, k, dtype=dt))


def test_full_zeros_ones_c_abi():
    for shape in [(), (0,), (5,), (3, 4), (2, 3, 4)]:
        n, sh = shape_args(shape)
        for dt in (B, I32, I64, F32, F64):
            same(call(lib.kiln_zeros, nd.CODES[dt], n, sh), np.zeros(shape, dt))
            same(call(lib.kiln_ones, nd.CODES[dt], n, sh), np.ones(shape, dt))
            same(call(lib.kiln_full, nd.CODES[dt], n, sh, -2.75), np.full(shape, -2.75).astype(dt))
    n, sh = shape_args((3,))
    same(call(lib.kiln_full_int, nd.CODES[I64], n, sh, 2**62 + 1), np.full(3, 2**62 + 1, dtype=np.int64))
    # big enough for the streamed path (several threads, non-temporal stores)
    n, sh = shape_args((3_000_001,))
    same(call(lib.kiln_full, nd.CODES[F64], n, sh, 7.0), np.full(3_000_001, 7.0))


@pytest.mark.parametrize("fn,args,status,words", [
    (lib.kiln_arange, (0.0, 1.0, 0.0, 4), nd.KILN_ERROR_BAD_ARGUMENT, "step must not be zero"),
    (lib.kiln_arange, (0.0, float("inf"), 1.0, 4), nd.KILN_ERROR_BAD_ARGUMENT, "finite"),
    (lib.kiln_arange, (0.0, 3.0, 1.0, 0), nd.KILN_ERROR_TYPE, "bool"),
    (lib.kiln_arange, (0.0, 3.0, 1.0, 9), nd.KILN_ERROR_BAD_ARGUMENT, "dtype"),
    (lib.kiln_linspace, (0.0, 1.0, -1, 1, 4), nd.KILN_ERROR_BAD_ARGUMENT, "num"),
    (lib.kiln_linspace, (0.0, float("nan"), 3, 1, 4), nd.KILN_ERROR_BAD_ARGUMENT, "finite"),
    (lib.kiln_eye, (-1, 3, 0, 4), nd.KILN_ERROR_BAD_ARGUMENT, "negative"),
])
def test_c_abi_errors_leave_out_untouched(fn, args, status, words):
    sentinel = ctypes.c_void_p(12345)
    got = fn(*args, ctypes.byref(sentinel))
    assert got == status, lib.kiln_last_error().decode()
    assert words in lib.kiln_last_error().decode()
    assert sentinel.value == 12345


@pytest.mark.parametrize("text,words", [
    ("arange(0, 1, 0)", "step must not be zero"),
    ("zeros((-1, 2))", "zeros: negative dimensions"),
    ("arange()", "needs its argument 'start'"),
    ("zeros((2,), dtype=x)", "dtype must be one of"),
    ("linspace(0, 1, num=2.5)", "num must be an integer"),
    ("eye(3, k=1, j=2)", "no keyword argument 'j'"),
    ("full((2,), 1, fill_value=2)", "twice"),
    ("arange(1, stop=x)", "stop must be a number"),
])
def test_parse_errors_name_the_problem(text, words):
    with pytest.raises(nd.KilnError) as e:
        nd.kiln_eval(text, x=np.zeros(2))
    assert words in e.value.message, e.value.message
