"""matmul and numpy.linalg through kiln's C ABI against NumPy 1.24 (Debian's).

Products are compared with NumPy's matmul on the same (zero-copy wrapped) views:
integers and bool exactly, floats within a few ulp of the operands' scale (kiln cuts a
product into tiles; BLAS may add in another order). LAPACK results are compared with
numpy.linalg on the same input, and where a result is defined only up to sign or order
(eigenvectors, Q, U, V) by reconstruction and orthogonality instead.

    /usr/bin/python3 -m pytest tests/python/test_linalg.py
"""

import ctypes
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import test_numpy_differential as nd  # noqa: E402  (the ctypes layer)
from test_reductions import eval_many  # noqa: E402

np = nd.np
lib = nd.lib
KILN_ERROR_SHAPE = 3
KILN_ERROR_LINALG = 9

lib.kiln_matmul.restype = ctypes.c_int
lib.kiln_matmul.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
lib.kiln_solve.restype = ctypes.c_int
lib.kiln_solve.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]

RNG = np.random.default_rng(20261201)


def data(dtype, shape):
    if np.dtype(dtype) == np.bool_:
        return RNG.random(shape) < 0.4
    if np.dtype(dtype).kind == "i":
        return RNG.integers(-9, 10, shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


def close(got, want, operands_scale=1.0, k=1):
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype.kind in "biu":
        assert np.array_equal(got, want)
    else:
        eps = np.finfo(want.dtype).eps
        np.testing.assert_allclose(got, want, rtol=0, atol=8 * eps * operands_scale * max(k, 1))


SHAPES = [((3, 4), (4, 5)), ((4,), (4,)), ((4,), (4, 3)), ((3, 4), (4,)), ((2, 3, 4), (4, 2)),
          ((2, 1, 3, 4), (5, 4, 2)), ((0, 3), (3, 2)), ((3, 0), (0, 2)), ((129, 70), (70, 131)),
          ((7, 1, 64, 32), (1, 3, 32, 48))]
DTYPES = [np.float64, np.float32, np.int64, np.int32, np.bool_]


@pytest.mark.parametrize("sa,sb", SHAPES)
@pytest.mark.parametrize("da", DTYPES)
@pytest.mark.parametrize("db", DTYPES)
def test_matmul_matches_numpy(sa, sb, da, db):
    a, b = data(da, sa), data(db, sb)
    want = a @ b
    got = nd.kiln_eval("a @ b", a=a, b=b)
    close(got, want, k=sa[-1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_matmul_of_views(dtype):
    a, b = data(dtype, (40, 50)), data(dtype, (50, 30))
    views = [(a.T.copy().T, b), (a, b.T.copy().T), (a[:, 1:41], b[1:41]), (a[::2], b[:, ::3]), (a[::-1], b[::-1, ::-1]),
             (np.broadcast_to(a[:1], (40, 50)), b), (data(dtype, (3, 50, 40)).transpose(0, 2, 1), b)]
    for x, y in views:
        close(nd.kiln_eval("a @ b", a=x, b=y), x @ y, k=50)


@pytest.mark.parametrize("expr,numpy", [
    ("relu(a @ b + bias)", lambda a, b, bias: np.maximum(a @ b + bias, 0)),
    ("a @ b + c", lambda a, b, bias: a @ b + bias[:, None]),
    ("(a @ b) * 2 - 1", lambda a, b, bias: (a @ b) * 2 - 1),
    ("where(a @ b > 0, a @ b, 0.1 * (a @ b))", lambda a, b, bias: np.where(a @ b > 0, a @ b, 0.1 * (a @ b))),
    ("sum(a @ b, axis=1)", lambda a, b, bias: np.sum(a @ b, axis=1)),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_epilogues_match_numpy(expr, numpy, dtype):
    a, b = data(dtype, (150, 90)), data(dtype, (90, 170))
    bias = data(dtype, (170,))
    c = data(dtype, (150, 1))
    got = nd.kiln_eval(expr, a=a, b=b, bias=bias, c=c)
    want = numpy(a, b, bias if "c" not in expr.split("@")[-1] else c[:, 0])
    close(got, want.astype(got.dtype), operands_scale=10, k=90)


def call_matmul(a, b, out=None):
    ha, hb = nd._wrap(a), nd._wrap(b)
    ho = nd._wrap(out) if out is not None else None
    result = ctypes.c_void_p()
    try:
        status = lib.kiln_matmul(ha, hb, ho, ctypes.byref(result))
        if status != nd.KILN_OK:
            raise nd.KilnError(status, lib.kiln_last_error().decode())
        if out is not None:
            assert not result.value
            return out
        try:
            return nd._to_numpy(result)
        finally:
            lib.kiln_array_release(result)
    finally:
        for h in (ha, hb, ho):
            if h is not None:
                lib.kiln_array_release(h)


def test_kiln_matmul_c_abi():
    a, b = data(np.float64, (6, 5, 4)), data(np.float64, (4, 3))
    close(call_matmul(a, b), a @ b, k=4)
    out = np.zeros((6, 5, 3))
    call_matmul(a, b, out)
    close(out, a @ b, k=4)
    out32 = np.zeros((6, 5, 3), np.float32)  # same_kind: float64 into float32
    call_matmul(a, b, out32)
    close(out32, (a @ b).astype(np.float32), k=4 * 1e9)
    bad = np.full((6, 5, 4), 7.0)
    with pytest.raises(nd.KilnError) as e:
        call_matmul(a, b, bad)
    assert e.value.status == KILN_ERROR_SHAPE and "(6, 5, 3)" in e.value.message
    assert (bad == 7.0).all()
    with pytest.raises(nd.KilnError) as e:
        call_matmul(a, a)
    assert e.value.status == KILN_ERROR_SHAPE and "(6, 5, 4) @ (6, 5, 4)" in e.value.message


def call_solve(a, b):
    ha, hb = nd._wrap(a), nd._wrap(b)
    result = ctypes.c_void_p()
    try:
        status = lib.kiln_solve(ha, hb, ctypes.byref(result))
        if status != nd.KILN_OK:
            raise nd.KilnError(status, lib.kiln_last_error().decode())
        try:
            return nd._to_numpy(result)
        finally:
            lib.kiln_array_release(result)
    finally:
        lib.kiln_array_release(ha)
        lib.kiln_array_release(hb)


def spd(n, dtype=np.float64, batch=()):
    m = RNG.standard_normal(batch + (n, n))
    return (m @ np.swapaxes(m, -1, -2) + n * np.eye(n)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_solve_c_abi_and_expression(dtype):
    a = spd(6, np.float64) if dtype != np.int64 else (RNG.integers(-5, 6, (6, 6)) + 20 * np.eye(6, dtype=np.int64))
    a = a.astype(dtype)
    for b in (data(np.float64, (6,)).astype(dtype), data(np.float64, (6, 3)).astype(dtype)):
        want = np.linalg.solve(a, b)
        got = call_solve(a, b)
        assert got.dtype == want.dtype
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
        np.testing.assert_allclose(nd.kiln_eval("solve(a, b)", a=a, b=b), want, rtol=tol, atol=tol)
    batched = spd(4, dtype=np.float64, batch=(3,))
    rhs = data(np.float64, (2, 1, 4, 2))
    np.testing.assert_allclose(call_solve(batched, rhs), np.linalg.solve(batched, rhs), rtol=1e-10, atol=1e-10)


def test_solve_errors():
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(nd.KilnError) as e:
        call_solve(singular, np.ones(2))
    assert e.value.status == KILN_ERROR_LINALG and "singular" in e.value.message.lower()
    with pytest.raises(nd.KilnError) as e:
        call_solve(np.ones((2, 3)), np.ones(2))
    assert e.value.status == KILN_ERROR_SHAPE and "(2, 3)" in e.value.message
    with pytest.raises(nd.KilnError) as e:
        call_solve(np.eye(3), np.ones(4))
    assert e.value.status == KILN_ERROR_SHAPE


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lapack_functions_match_numpy(dtype):
    tol = 2e-3 if dtype == np.float32 else 1e-9
    a = spd(5, dtype)
    g = data(dtype, (6, 4))
    for expr, want in [("inv(a)", np.linalg.inv(a)), ("det(a)", np.linalg.det(a)), ("cholesky(a)", np.linalg.cholesky(a)),
                       ("eigvalsh(a)", np.linalg.eigvalsh(a)), ("norm(a)", np.linalg.norm(a)),
                       ("norm(a, ord=2)", np.linalg.norm(a, 2)), ("norm(a, 'nuc')", np.linalg.norm(a, "nuc")),
                       ("norm(a, ord=inf, axis=1)", np.linalg.norm(a, np.inf, axis=1)),
                       ("norm(a, ord=1, axis=(1, 0), keepdims=True)", np.linalg.norm(a, 1, axis=(1, 0), keepdims=True)),
                       ("svd(g, compute_uv=False)", np.linalg.svd(g, compute_uv=False)),
                       ("qr(g, mode='r')", np.linalg.qr(g, mode="r"))]:
        got = nd.kiln_eval(expr, a=a, g=g)
        assert got.dtype == np.asarray(want).dtype, expr
        scale = max(1.0, float(np.max(np.abs(want))))
        if expr.startswith("qr"):  # R is unique up to the signs of its rows
            got, want = np.abs(got), np.abs(want)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=expr)


def test_several_results_unpack_and_reconstruct():
    a = spd(5)
    g = data(np.float64, (6, 4))
    q, r = eval_many("q, r = qr(g)", {"g": g}, result_names=["q", "r"])
    np.testing.assert_allclose(q @ r, g, atol=1e-12)
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-12)
    w, v = eval_many("w, v = eigh(a)", {"a": a}, result_names=["w", "v"])
    np.testing.assert_allclose(w, np.linalg.eigvalsh(a), rtol=1e-12)
    np.testing.assert_allclose(v @ np.diag(w) @ v.T, a, atol=1e-10)
    u, s, vh = eval_many("u, s, vh = svd(g, full_matrices=False)", {"g": g}, result_names=["u", "s", "vh"])
    np.testing.assert_allclose(u @ np.diag(s) @ vh, g, atol=1e-12)
    b = data(np.float64, (6,))
    x, res, rank, sv = eval_many("x, res, rank, sv = lstsq(g, b)", {"g": g, "b": b}, result_names=["x", "res", "rank", "sv"])
    wx, wres, wrank, wsv = np.linalg.lstsq(g, b, rcond=None)
    np.testing.assert_allclose(x, wx, atol=1e-12)
    np.testing.assert_allclose(res, wres, atol=1e-12)
    assert rank == wrank and rank.dtype == np.int64
    np.testing.assert_allclose(sv, wsv, atol=1e-12)
    # One result taken by subscript, and an element-wise use of it.
    np.testing.assert_allclose(nd.kiln_eval("eigh(a)[0] * 2", a=a), 2 * np.linalg.eigvalsh(a), rtol=1e-12)
    with pytest.raises(nd.KilnError) as e:
        nd.kiln_eval("qr(g) + 1", g=g)
    assert e.value.status == nd.KILN_ERROR_PARSE and "unpack" in e.value.message


def test_lapack_errors():
    with pytest.raises(nd.KilnError) as e:
        nd.kiln_eval("inv(a)", a=np.array([[1.0, 2.0], [2.0, 4.0]]))
    assert e.value.status == KILN_ERROR_LINALG
    with pytest.raises(nd.KilnError) as e:
        nd.kiln_eval("cholesky(a)", a=-np.eye(3))
    assert e.value.status == KILN_ERROR_LINALG
    with pytest.raises(nd.KilnError) as e:
        nd.kiln_eval("det(a)", a=np.ones((2, 3)))
    assert e.value.status == KILN_ERROR_SHAPE
    with pytest.raises(nd.KilnError) as e:
        nd.kiln_eval("qr(a, mode='full')", a=np.eye(2))
    assert e.value.status == nd.KILN_ERROR_BAD_ARGUMENT
    with pytest.raises(nd.KilnError) as e:
        nd.kiln_eval("norm(a, 'fro', axis=0)", a=np.eye(2))
    assert e.value.status == nd.KILN_ERROR_BAD_ARGUMENT
    assert np.linalg.det(np.array([[1.0, 2.0], [2.0, 4.0]])) == nd.kiln_eval("det(a)", a=np.array([[1.0, 2.0], [2.0, 4.0]]))
