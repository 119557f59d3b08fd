"""kiln.dask against NumPy and against kiln on one machine: uneven chunks, broadcasting,
every reduction, random arrays across chunkings, .npy files in and out, thread budgets; on
Dask's threaded and synchronous schedulers and on a distributed.LocalCluster of 2 worker
processes on loopback.

Run by meson with KILN_LIBRARY (the built libkiln.so) and PYTHONPATH (frontend/python).
"""

import logging
import os

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

import kiln
import kiln.dask as kd

RNG = np.random.default_rng(20261202)


def floats(shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


@pytest.fixture(scope="module")
def cluster():
    """2 worker processes of 1 thread each on 127.0.0.1, shut down after the module."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=":0", silence_logs=logging.ERROR, timeout=120)
    client = distributed.Client(cluster, timeout=120, set_as_default=False)  # the other tests stay local
    try:
        yield client
    finally:
        client.close(timeout=60)
        cluster.close(timeout=60)


@pytest.fixture(params=["threads", "sync", "cluster"])
def compute(request):
    """compute(x): x computed on the scheduler under test."""
    if request.param == "cluster":
        client = request.getfixturevalue("cluster")
        return lambda x: client.compute(x).result(timeout=300)
    return lambda x: x.compute(scheduler=request.param)


# Uneven chunks along both axes, and operands that broadcast (a row, a column, a scalar).
A = floats((301, 257))
B = floats((257,))
C = floats((301, 1))
I32 = RNG.integers(-1000, 1000, (301, 257)).astype(np.int32)
F32 = floats((301, 257), np.float32)


def dask_inputs():
    return {"a": da.from_array(A, chunks=((100, 101, 100), (64, 129, 64))),
            "b": da.from_array(B, chunks=50), "c": da.from_array(C, chunks=((7, 294), 1)),
            "i": da.from_array(I32, chunks=(150, 100)), "f": da.from_array(F32, chunks=(77, 257))}


WHOLE = {"a": A, "b": B, "c": C, "i": I32, "f": F32}

ELEMENTWISE = [
    ("2*a + 3*b*c - 1.5", lambda a, b, c, i, f: 2 * a + 3 * b * c - 1.5),
    ("where(a > 0, a, 0.1*a) + sqrt(abs(b))", lambda a, b, c, i, f: np.where(a > 0, a, 0.1 * a) + np.sqrt(abs(b))),
    ("i * f + c", lambda a, b, c, i, f: i * f + c),
    ("t = a*b; t*t - exp(c)", lambda a, b, c, i, f: (a * b) ** 2 - np.exp(c)),
    ("float32(i) / 7 + f", lambda a, b, c, i, f: i.astype(np.float32) / 7 + f),
]


@pytest.mark.parametrize("expr,numpy_expr", ELEMENTWISE, ids=[e for e, _ in ELEMENTWISE])
def test_elementwise_equals_kiln_bit_for_bit_and_numpy(compute, expr, numpy_expr):
    r = kd.evaluate(expr, **dask_inputs())
    assert isinstance(r, da.Array)
    got = compute(r)
    want = kiln.evaluate(expr, local_dict=WHOLE)
    assert got.dtype == want.dtype == r.dtype and got.shape == want.shape == r.shape
    np.testing.assert_array_equal(got, want)  # element-wise bits do not depend on the blocks
    np.testing.assert_allclose(got, numpy_expr(**WHOLE), rtol=2e-6 if got.dtype == np.float32 else 1e-12, atol=1e-14)


REDUCTIONS = [
    "sum(a*b)", "sum(a, axis=0)", "sum(i, axis=1)", "prod(a*0.01 + 1, axis=0)", "mean(a)", "mean(i, axis=-1)",
    "var(a, axis=0, ddof=1)", "std(f)", "std(a*c, axis=(0, 1), keepdims=True)", "min(a, axis=1, keepdims=True)",
    "max(i)", "any(a > 3.5, axis=0)", "all(a > -4.5)", "argmin(a)", "argmax(a, axis=0)", "argmin(i, axis=1)",
    "argmax(f, axis=-1, keepdims=True)", "sum(a > 0)", "mean(f, axis=0)", "var(i)",
]


@pytest.mark.parametrize("expr", REDUCTIONS)
def test_reductions_equal_kiln_and_numpy(compute, expr):
    r = kd.evaluate(expr, **dask_inputs())
    got = compute(r)
    want = kiln.evaluate(expr, local_dict=WHOLE)
    assert np.asarray(got).dtype == want.dtype == r.dtype and np.shape(got) == want.shape == r.shape
    exact = want.dtype.kind in "biu" or expr.startswith(("min", "max", "arg", "any", "all"))
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        single = "f)" in expr or "f," in expr
        np.testing.assert_allclose(got, want, rtol=1e-5 if single else 1e-12, atol=1e-4 if single else 1e-11)
    name, _, rest = expr.partition("(")
    numpy_value = eval(f"np.{name}({rest}", {"np": np, **WHOLE})
    single = "f" in rest.split(",")[0]
    np.testing.assert_allclose(got, numpy_value, rtol=1e-4 if single else 1e-10, atol=1e-3 if single else 1e-10)


@pytest.mark.parametrize("expr", ["(a - mean(a)) / std(a)", "a - mean(a, axis=0)",
                                  "(a - mean(a, axis=1, keepdims=True)) / std(a, axis=1, keepdims=True)",
                                  "std(a - mean(a, axis=0)) + sum(b)", "a / max(abs(a)) + argmax(b)"])
def test_reductions_inside_elementwise_work(compute, expr):
    got = compute(kd.evaluate(expr, **dask_inputs()))
    np.testing.assert_allclose(got, kiln.evaluate(expr, local_dict=WHOLE), rtol=1e-12, atol=1e-13)


def test_inputs_named_like_the_partials_names_are_fine():
    s, v, i = (da.from_array(x, chunks=(100, 100)) for x in (A, A * 2, A + 1))
    got = kd.evaluate("std(s + v) + argmax(i) + var(s)", s=s, v=v, i=i).compute()
    np.testing.assert_allclose(got, (A + 2 * A).std() + (A + 1).argmax() + A.var(), rtol=1e-12)


def test_mean_beside_std_of_the_same_operand_shares_its_pass():
    a = da.from_array(A, chunks=(100, 100))
    z = kd.evaluate("(a - mean(a)) / std(a)", a=a)
    assert sum("kiln-partial" in str(k) for k in z.dask.layers) == 1  # one pass for both statistics
    np.testing.assert_allclose(z.compute(), (A - A.mean()) / A.std(), rtol=1e-12, atol=1e-13)
    alone = kd.evaluate("mean(a) + std(a, axis=0)", a=a)  # other axes: a pass each
    assert sum("kiln-partial" in str(k) for k in alone.dask.layers) == 2
    np.testing.assert_allclose(alone.compute(), A.mean() + A.std(axis=0), rtol=1e-12)


def test_reductions_over_single_block_axes_run_in_the_block(compute):
    a = da.from_array(A, chunks=(50, -1))  # whole rows: a row-wise reduction needs no tree
    r = kd.evaluate("sum(a, axis=1) + argmax(a, axis=-1)", a=a)
    assert not any("kiln-partial" in str(k) for k in r.dask.layers)
    np.testing.assert_allclose(compute(r), A.sum(axis=1) + A.argmax(axis=1), rtol=1e-12)


@pytest.mark.parametrize("expr", ["var(m)", "std(m, ddof=1)", "max(m)", "argmax(m)", "argmin(m)", "sum(m)",
                                  "mean(m)", "min(m2, axis=0)", "argmax(m2, axis=0)", "var(m2, axis=0)"])
def test_reductions_over_empty_blocks(expr):
    # Empty blocks along the reduced axis: what a mask and compute_chunk_sizes() leave.
    v = np.arange(20.0) - 10.5
    d = da.from_array(v, chunks=5)
    m = d[d > 0]
    m.compute_chunk_sizes()
    assert 0 in m.chunks[0]
    w = np.arange(60.0).reshape(12, 5) % 7
    m2 = da.from_array(w, chunks=((3, 0, 4, 0, 5), 5))
    got = kd.evaluate(expr, m=m, m2=m2).compute(scheduler="sync")
    np.testing.assert_allclose(got, kiln.evaluate(expr, local_dict={"m": v[v > 0], "m2": w}), rtol=1e-12)


def test_arg_reductions_and_max_follow_numpy_with_nans_and_ties():
    x = np.zeros((40, 30))
    x[5, 7] = x[33, 2] = 3.0  # a tie: the first in C order wins
    x[:, 20] = -1.0
    x[12, 20] = x[30, 20] = -2.0
    y = x.copy()
    y[25, 1] = y[8, 29] = np.nan  # the first NaN wins, and max is NaN
    for v in (x, y):
        d = da.from_array(v, chunks=(7, 11))
        for expr in ("argmax(d)", "argmin(d)", "argmax(d, axis=0)", "argmin(d, axis=1)", "max(d, axis=0)"):
            got = kd.evaluate(expr, d=d).compute()
            np.testing.assert_array_equal(got, kiln.evaluate(expr, local_dict={"d": v}))
            name, _, rest = expr.partition("(")
            np.testing.assert_array_equal(got, getattr(np, name)(v, **({"axis": int(rest[-2])} if "axis" in rest else {})))


def test_names_come_from_keywords_local_dict_the_callers_frame_and_numbers():
    a, b = da.from_array(A, chunks=100), B
    scale = 2.5  # a Python number: a 0-d float64 input, as in kiln.evaluate
    np.testing.assert_array_equal(kd.evaluate("a * scale + b").compute(), kiln.evaluate("A * scale + B"))
    np.testing.assert_array_equal(kd.evaluate("x + 1", local_dict={"x": a}).compute(), A + 1)
    np.testing.assert_array_equal(kd.evaluate("x + y", {"x": a, "y": 7}, x=B).compute(), B + 7)  # keywords first
    np.testing.assert_array_equal(kd.evaluate("b * 2", b=B).compute(), B * 2)  # a NumPy array
    assert kd.evaluate("2 + 3").compute() == 5


def test_refusals_name_what_is_wrong_before_anything_runs():
    a, b = da.from_array(A, chunks=100), da.from_array(B[:100], chunks=50)
    with pytest.raises(kiln.KilnError, match=r"shapes do not broadcast together: a \(301, 257\), b \(100,\)") as e:
        kd.evaluate("a + b", a=a, b=b)
    assert e.value.status == 3  # KILN_ERROR_SHAPE, as kiln.evaluate says
    with pytest.raises(kiln.KilnError, match="'matmul' at position 2 cannot be computed block by block"):
        kd.evaluate("a @ a", a=a)
    with pytest.raises(kiln.KilnError, match="unknown name 'nowhere'"):
        kd.evaluate("a + nowhere", a=a)
    with pytest.raises(kiln.KilnError, match="parse error"):
        kd.evaluate("a +", a=a)
    with pytest.raises(TypeError, match="'z' has dtype complex128"):
        kd.evaluate("z + 1", z=da.zeros(3, dtype=np.complex128))
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        kd.evaluate("u + 1", u=a[a[:, 0] > 0])
    with pytest.raises(kiln.KilnError, match="axis"):
        kd.evaluate("sum(a, axis=2)", a=a)


# ---- random arrays ------------------------------------------------------------------------

RANDOM = [
    ("uniform", lambda s, shape, chunks: kd.random.uniform(s, shape, -2.0, 3.0, chunks=chunks),
     lambda s, shape: kiln.random.uniform(s, shape, -2.0, 3.0)),
    ("uniform float32", lambda s, shape, chunks: kd.random.uniform(s, shape, dtype=np.float32, chunks=chunks),
     lambda s, shape: kiln.random.uniform(s, shape, dtype=np.float32)),
    ("normal", lambda s, shape, chunks: kd.random.normal(s, shape, 1.0, 0.5, chunks=chunks),
     lambda s, shape: kiln.random.normal(s, shape, 1.0, 0.5)),
    ("standard_normal float32", lambda s, shape, chunks: kd.random.standard_normal(s, shape, np.float32, chunks),
     lambda s, shape: kiln.random.standard_normal(s, shape, np.float32)),
    ("integers", lambda s, shape, chunks: kd.random.integers(s, shape, -50, 10**12, chunks=chunks),
     lambda s, shape: kiln.random.integers(s, shape, -50, 10**12)),
    ("integers int32", lambda s, shape, chunks: kd.random.integers(s, shape, 7, dtype=np.int32, chunks=chunks),
     lambda s, shape: kiln.random.integers(s, shape, 7, dtype=np.int32)),
    ("random", lambda s, shape, chunks: kd.random.random(s, shape, chunks=chunks),
     lambda s, shape: kiln.random.random(s, shape)),
]


@pytest.mark.parametrize("name,dask_random,kiln_random", RANDOM, ids=[r[0] for r in RANDOM])
def test_random_arrays_are_bit_identical_to_kilns_for_any_chunks(compute, name, dask_random, kiln_random):
    shape = (203, 61, 5)
    for seed in (1, 2**63 - 1):
        want = kiln_random(seed, shape)
        for chunks in ((7, 13, 5), (203, 1, 2), (50, 61, 5), "auto"):
            r = dask_random(seed, shape, chunks)
            assert r.dtype == want.dtype and r.shape == want.shape
            np.testing.assert_array_equal(compute(r), want)
    np.testing.assert_array_equal(kd.random.uniform(3, 1000, chunks=333).compute(), kiln.random.uniform(3, 1000))
    np.testing.assert_array_equal(kd.random.uniform(3, (), chunks=()).compute(), kiln.random.uniform(3, ()))
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*63\)"):
        kd.random.uniform(2**63, 10)


def test_random_dask_arrays_feed_kiln_dask_expressions():
    u = kd.random.uniform(5, (1000, 300), chunks=(128, 100))
    got = kd.evaluate("(u - mean(u)) / std(u)", u=u).compute()
    whole = kiln.random.uniform(5, (1000, 300))
    np.testing.assert_allclose(got, (whole - whole.mean()) / whole.std(), rtol=1e-11, atol=1e-12)


# ---- .npy files -------------------------------------------------------------------------------


def test_from_npy_and_to_npy_round_trip_block_by_block(compute, tmp_path):
    src, dst = tmp_path / "a.npy", tmp_path / "r.npy"
    kiln.save(src, A)
    a = kd.from_npy(src, chunks=(64, 100))
    assert a.shape == A.shape and a.dtype == A.dtype and a.chunks[0][0] == 64
    np.testing.assert_array_equal(compute(a), A)
    r = kd.evaluate("2*a + 3*b*c - 1.5", a=a, b=B, c=C)
    delayed = kd.to_npy(dst, r, compute=False)
    compute(delayed)
    got = np.load(dst)
    np.testing.assert_array_equal(got, kiln.evaluate("2*a + 3*b*c - 1.5", local_dict=WHOLE))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "r.npy"]  # no partial file left
    # Every dtype, a 0-d and a 1-d array, and the file NumPy would have written.
    for value in (I32, F32 > 0, np.arange(10**5, dtype=np.int64), np.array(2.5)):
        path = tmp_path / "v.npy"
        kd.to_npy(path, da.from_array(value, chunks=max(1, value.size // 7) if value.ndim == 1 else "auto"))
        np.testing.assert_array_equal(np.load(path), value)
        np.save(tmp_path / "numpy.npy", value)
        assert path.read_bytes() == (tmp_path / "numpy.npy").read_bytes()


def test_from_npy_reads_fortran_files_and_refuses_byte_swapped_ones(tmp_path):
    np.save(tmp_path / "f.npy", np.asfortranarray(A))
    np.testing.assert_array_equal(kd.from_npy(tmp_path / "f.npy", chunks=(100, 50)).compute(), A)
    np.save(tmp_path / "big.npy", A.astype(">f8"))
    with pytest.raises(kiln.KilnError, match="cannot be mapped as it is"):
        kd.from_npy(tmp_path / "big.npy")
    with pytest.raises(kiln.KilnError, match="No such file"):
        kd.from_npy(tmp_path / "missing.npy")


def test_kiln_load_maps_read_only_and_refuses_writes(tmp_path):
    kiln.save(tmp_path / "a.npy", A)
    m = kiln.load(tmp_path / "a.npy", mmap="r")
    np.testing.assert_array_equal(m, A)
    assert not m.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        kiln.evaluate("a + 1", local_dict={"a": A}, out=m)
    assert kiln.load(tmp_path / "a.npy", mmap=True).flags.writeable  # copy-on-write, as before
    with pytest.raises(ValueError, match="mmap must be"):
        kiln.load(tmp_path / "a.npy", mmap="w")


def test_to_npy_delayed_makes_its_file_only_when_computed(tmp_path):
    x = da.from_array(A, chunks=64)
    later = kd.to_npy(tmp_path / "later.npy", x, compute=False)
    assert list(tmp_path.iterdir()) == []  # nothing made before it is computed
    later.compute()
    np.testing.assert_array_equal(np.load(tmp_path / "later.npy"), A)
    later.compute()  # computing it again writes it again
    np.testing.assert_array_equal(np.load(tmp_path / "later.npy"), A)
    assert [p.name for p in tmp_path.iterdir()] == ["later.npy"]


def test_from_npy_reads_bool_files_with_stray_bytes_as_numpy_does(tmp_path):
    mask = A > 0
    np.save(tmp_path / "m.npy", mask)
    raw = bytearray((tmp_path / "m.npy").read_bytes())
    offset = len(raw) - mask.size
    raw[offset + 5] = 7  # not 0 or 1: True, as NumPy reads it
    (tmp_path / "m.npy").write_bytes(bytes(raw))
    mask[0, 5] = True
    got = kd.from_npy(tmp_path / "m.npy", chunks=(100, 50))
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got.compute(), mask)
    np.testing.assert_array_equal(kd.evaluate("sum(m)", m=got).compute(), mask.sum())


def test_from_npy_notices_a_file_changed_under_it(tmp_path):
    kiln.save(tmp_path / "a.npy", A)
    a = kd.from_npy(tmp_path / "a.npy", chunks=100)
    kiln.save(tmp_path / "a.npy", A[:10])
    with pytest.raises(OSError, match="changed after from_npy"):
        a.compute()


def _fail_on_block(block, block_info=None):
    if block_info[0]["chunk-location"] == (2, 0):
        raise RuntimeError("block (2, 0) failed")
    return block


def test_a_failed_to_npy_leaves_the_old_file_and_no_partial_one(tmp_path):
    path = tmp_path / "out.npy"
    kiln.save(path, B)
    before = path.read_bytes()
    bad = da.from_array(A, chunks=50).map_blocks(_fail_on_block, dtype=A.dtype)
    with pytest.raises(RuntimeError, match=r"block \(2, 0\) failed"):
        kd.to_npy(path, bad, durable=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.npy"]
    kd.to_npy(path, da.from_array(A, chunks=50), durable=True)
    np.testing.assert_array_equal(np.load(path), A)


# ---- thread budgets ---------------------------------------------------------------------------


def _budget_of_task(block):
    """(the task's kiln threads, kiln.get_num_threads() under them)."""
    threads = kd._task_threads(None)
    with kiln.thread_budget(threads):
        return np.array([threads, kiln.get_num_threads()])


def test_kiln_threads_times_task_threads_stay_within_the_cores(cluster):
    cores = len(os.sched_getaffinity(0))
    x = da.ones(8, chunks=1)
    # The threaded scheduler: each of its pool's threads gets cores // pool.
    seen = x.map_blocks(_budget_of_task, dtype=np.int64, chunks=(2,)).compute(scheduler="threads", num_workers=2)
    assert (seen[0::2] == max(1, cores // dask.system.CPU_COUNT)).all()
    # The synchronous scheduler runs one task at a time: kiln's whole budget (0).
    seen = x.map_blocks(_budget_of_task, dtype=np.int64, chunks=(2,)).compute(scheduler="sync")
    assert (seen[0::2] == 0).all() and (seen[1::2] == kiln.get_num_threads()).all()
    # A worker process of the cluster: Dask's nanny sets OMP_NUM_THREADS=1, so 1 per task.
    seen = cluster.compute(x.map_blocks(_budget_of_task, dtype=np.int64, chunks=(2,))).result(timeout=120)
    assert (seen[0::2] == 1).all() and (seen[1::2] == 1).all()
    assert kd._task_threads(3) == 3  # dask.config's kiln.threads, when set, wins


def _threads_inside(block, text=None):
    with kiln.thread_budget(kd._task_threads(None)):
        return np.array([kiln.get_num_threads()])


def test_a_task_budget_is_the_tasks_alone_and_is_given_back():
    before = kiln.get_num_threads()
    inside = da.ones(4, chunks=1).map_blocks(_threads_inside, dtype=np.int64).compute(scheduler="threads",
                                                                                    num_workers=4)
    cores = len(os.sched_getaffinity(0))
    assert (inside == max(1, cores // dask.system.CPU_COUNT)).all()
    assert kiln.get_num_threads() == before
    with kiln.thread_budget(1):
        assert kiln.get_num_threads() == 1
        with kiln.thread_budget(0):
            assert kiln.get_num_threads() == before
        assert kiln.get_num_threads() == 1
    assert kiln.get_num_threads() == before
    with pytest.raises(kiln.KilnError, match=">= 0"):
        kiln.set_thread_num_threads(-1)


def test_dask_config_kiln_threads_sets_every_tasks_budget(monkeypatch):
    asked = []
    real = kd._task_threads
    monkeypatch.setattr(kd, "_task_threads", lambda configured: asked.append(configured) or real(configured))
    with dask.config.set({"kiln.threads": 2}):
        r = kd.evaluate("a + sum(a) + 1", a=da.from_array(A, chunks=100))
    np.testing.assert_allclose(r.compute(scheduler="threads"), A + A.sum() + 1, rtol=1e-12)
    assert asked and all(n == 2 for n in asked)  # partials and element-wise blocks alike
