"""The kiln Python package against NumPy: results, zero copies, lifetimes, DLPack, errors, threads.

Run by meson with KILN_LIBRARY (the built libkiln.so) and PYTHONPATH (frontend/python).
"""

import gc
import os
import sys
import threading
import time

import numpy as np
import pytest

import kiln

DTYPES = [np.bool_, np.int32, np.int64, np.float32, np.float64]


def address(a):
    return a.__array_interface__["data"][0]


def live():
    gc.collect()
    return kiln.live_buffers()


# ---- evaluate ---------------------------------------------------------------------------

def test_evaluate_takes_arrays_from_the_callers_frame_like_numexpr():
    a = np.arange(12.0).reshape(3, 4)
    b = np.linspace(-1, 1, 4)
    r = kiln.evaluate("2*a + 3*b - 1.5")
    np.testing.assert_array_equal(r, 2 * a + 3 * b - 1.5)
    assert isinstance(r, np.ndarray) and r.dtype == np.float64 and r.shape == (3, 4)


GLOBAL_G = np.array([1.0, 2.0, 3.0])


def test_names_come_from_local_dict_then_global_dict_then_the_callers_variables():
    np.testing.assert_array_equal(kiln.evaluate("GLOBAL_G * 2"), GLOBAL_G * 2)
    x = np.ones(3)
    np.testing.assert_array_equal(kiln.evaluate("x + y", local_dict={"x": x, "y": x}), 2 * x)
    # local_dict hides the caller's variables of the same name; global_dict is the fallback.
    np.testing.assert_array_equal(kiln.evaluate("x + GLOBAL_G", local_dict={"x": 2 * x}, global_dict={"GLOBAL_G": x}),
                                  3 * x)
    with pytest.raises(kiln.KilnError, match="unknown name 'nowhere'") as e:
        kiln.evaluate("x + nowhere")
    assert e.value.status == 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_and_numpy_promotion(dtype):
    rng = np.random.default_rng(1)
    a = (rng.random(1000) * 10).astype(dtype)
    b = (rng.random(1000) * 10 + 1).astype(dtype)
    np.testing.assert_array_equal(kiln.evaluate("a == b"), a == b)
    if dtype is np.bool_:
        np.testing.assert_array_equal(kiln.evaluate("a & ~b"), a & ~b)
        return
    r = kiln.evaluate("a * b + a")
    assert r.dtype == (a * b + a).dtype
    np.testing.assert_allclose(r, a * b + a, rtol=1e-6)
    np.testing.assert_allclose(kiln.evaluate("where(a > b, a, b - 1)"), np.where(a > b, a, b - 1), rtol=1e-6)


def test_any_strides_are_read_in_place():
    base = np.arange(60.0).reshape(6, 10)
    views = {
        "transposed": base.T,
        "reversed": base[::-1, ::-2],
        "column": base[:, 3],
        "broadcast": np.broadcast_to(base[0], (4, 10)),
        "fortran": np.asfortranarray(base),
        "zero-d": np.array(2.5),
        "empty": base[:0],
    }
    for name, v in views.items():
        np.testing.assert_array_equal(kiln.evaluate("v * 2 + 1", local_dict={"v": v}), v * 2 + 1, err_msg=name)


def test_numbers_are_zero_d_arrays_as_in_numexpr():
    a = np.arange(4, dtype=np.float32)
    k, f, t = 3, 0.5, True
    r = kiln.evaluate("a * k + f")
    np.testing.assert_array_equal(r, a * 3 + np.float32(0.5))
    # Numbers are 0-d arrays and promote by dtype, as in numexpr: float64 here, where
    # NumPy 1.24's value-based rule for scalars would keep float32.
    assert r.dtype == np.float64
    np.testing.assert_array_equal(kiln.evaluate("where(t, a, 0)"), a)
    np.testing.assert_array_equal(kiln.evaluate("a * s", local_dict={"a": a, "s": np.float32(2)}), a * 2)


def test_reductions_and_programs_give_numpy_results():
    m = np.random.default_rng(2).random((50, 40))
    np.testing.assert_allclose(kiln.evaluate("sum(m * m)"), np.sum(m * m), rtol=1e-12)
    np.testing.assert_allclose(kiln.evaluate("mean(m, axis=1)"), m.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(kiln.evaluate("t = m - mean(m); sum(t * t)"), np.sum((m - m.mean()) ** 2), rtol=1e-10)
    assert kiln.evaluate("argmax(m)") == np.argmax(m)
    assert kiln.evaluate("sum(m)").shape == ()


def test_out_is_written_in_place_cast_and_broadcast():
    a = np.arange(6.0).reshape(2, 3)
    out = np.zeros((2, 3), dtype=np.float32)
    r = kiln.evaluate("a * 2", out=out)
    assert r is out
    np.testing.assert_array_equal(out, (a * 2).astype(np.float32))
    # out may alias an input: a NumPy-style in-place update.
    before = address(a)
    kiln.evaluate("a + 1", out=a)
    assert address(a) == before
    np.testing.assert_array_equal(a, np.arange(6.0).reshape(2, 3) + 1)
    strided = np.zeros((4, 6))[::2, ::2]
    kiln.evaluate("b", local_dict={"b": np.array([1.0, 2.0, 3.0])}, out=strided)
    np.testing.assert_array_equal(strided, [[1, 2, 3], [1, 2, 3]])


def test_empty_arrays_in_and_out():
    for shape in [(0,), (0, 3), (3, 0), (2, 0, 2)]:
        e = np.empty(shape)  # NumPy gives empty arrays zero strides
        out = np.empty(shape)
        assert kiln.evaluate("e * 2 + 1", out=out) is out
        assert kiln.evaluate("e * 2 + 1").shape == shape
        assert kiln.evaluate("sum(e)") == 0


def test_a_failure_leaves_out_untouched():
    a = np.arange(5.0)
    out = np.full(4, 7.0)
    with pytest.raises(kiln.KilnError) as e:
        kiln.evaluate("a * 2", out=out)  # (5,) does not fit (4,)
    assert e.value.status == 3 and "shape" in e.value.status_name
    np.testing.assert_array_equal(out, 7.0)
    iout = np.full(5, 7, dtype=np.int32)
    with pytest.raises(kiln.KilnError) as e:
        kiln.evaluate("a * 2", out=iout)  # float64 into int32 is not same_kind
    assert e.value.status == 4
    np.testing.assert_array_equal(iout, 7)
    with pytest.raises(ValueError, match="read-only"):
        ro = np.zeros(5)
        ro.flags.writeable = False
        kiln.evaluate("a", out=ro)
    buffer = bytearray(8 * 8)  # writable, its data aligned, its stride not a multiple of 8
    skewed = np.ndarray((5,), np.float64, buffer, 0, (12,))
    with pytest.raises(TypeError, match="'out' is not aligned"):
        kiln.evaluate("a", out=skewed)
    assert buffer == bytearray(8 * 8)


def test_kiln_errors_are_value_errors_with_status_message_and_offset():
    a = np.ones(3)
    with pytest.raises(kiln.KilnError) as e:
        kiln.evaluate("a + * 2")
    assert isinstance(e.value, ValueError)
    assert e.value.status == 1 and e.value.status_name == "parse error"
    assert "position 4" in str(e.value) and e.value.offset == 4
    with pytest.raises(kiln.KilnError, match="unknown function 'sqr'"):
        kiln.evaluate("sqr(a)")
    with pytest.raises(kiln.KilnError, match=r"\(3,\).*\(2,\)|\(2,\).*\(3,\)"):
        kiln.evaluate("a + b", local_dict={"a": a, "b": np.ones(2)})


@pytest.mark.parametrize("value, message", [
    (np.arange(3, dtype=np.uint8), "'x' has dtype uint8"),
    (np.ones(3, dtype=np.complex128), "'x' has dtype complex128"),
    (np.ones(3, dtype=np.float16), "'x' has dtype float16"),
    (np.ones(3, dtype=">f8"), "'x' has byte-swapped dtype >f8"),
    (np.frombuffer(bytes(17), dtype=np.float64, offset=1), "'x' is not aligned"),
    (np.ndarray((3,), np.float64, bytes(48), 0, (12,)), "'x' is not aligned"),  # strides of 12 bytes
    ([1.0, 2.0], "'x' is a list"),
    ("text", "'x' is a str"),
    (None, "'x' is a NoneType"),
])
def test_values_kiln_cannot_take_are_type_errors_naming_the_variable(value, message):
    with pytest.raises(TypeError, match=message):
        kiln.evaluate("x + 1", local_dict={"x": value})
    with pytest.raises(TypeError, match="must be a str"):
        kiln.evaluate(b"x + 1")


def test_explain_shows_the_fused_plan_without_evaluating():
    a = np.ones((100, 30))
    b = np.ones(30, dtype=np.float32)
    text = kiln.explain("sqrt(a*a + b*b)")
    assert "fused loop" in text and "sqrt<float64>" in text


# ---- zero copies and lifetimes ------------------------------------------------------------

def test_results_are_kiln_memory_handed_to_numpy_without_a_copy():
    base = np.zeros(1010)
    first = (16 - address(base) % 64) % 64 // 8  # the element 16 bytes past a cache line
    a = base[first:first + 1000]
    a[:] = np.arange(1000.0)
    r = kiln.evaluate("a * 2")
    assert isinstance(r.base, kiln.Array)
    assert address(r) == r.base.__array_interface__["data"][0]
    # kiln's allocation, placed past a cache line as its operand is (NumPy's arrays lie
    # 16 bytes past one), so that chunks start on lines for both
    assert address(a) % 64 == 16 and address(r) % 64 == 16
    assert np.array_equal(r, np.arange(1000.0) * 2)
    assert r.flags.writeable and r.flags.c_contiguous


def test_inputs_are_wrapped_in_place():
    a = np.arange(10.0)
    k = kiln.asarray(a)
    assert k.__array_interface__["data"][0] == address(a)
    assert address(np.asarray(k)) == address(a)
    strided = np.arange(20.0)[::-2]
    assert kiln.asarray(strided).strides == strided.strides


def test_a_result_outlives_its_inputs_and_freeing_everything_frees_kilns_memory():
    baseline = live()
    a = np.random.default_rng(3).random(100_000)
    b = a.copy()
    expected = np.sqrt(a * a + b * b)
    r = kiln.evaluate("sqrt(a*a + b*b)")
    count, nbytes = live()
    assert count == baseline[0] + 1 and nbytes == baseline[1] + r.nbytes  # the result only
    del a, b
    gc.collect()
    np.testing.assert_array_equal(r, expected)
    view = r[10:20]  # a NumPy view keeps kiln's buffer alive too
    del r
    assert live()[0] == baseline[0] + 1
    np.testing.assert_array_equal(view, expected[10:20])
    del view
    assert live() == baseline


def test_wrapped_inputs_are_released_after_each_call():
    a = np.ones(1000)
    kiln.evaluate("a + 1")  # plans are cached at the first call
    baseline = live()
    refs = sys.getrefcount(a)
    for _ in range(100):
        kiln.evaluate("a + 1")
        kiln.evaluate("a + 1", out=np.empty(1000))
    assert live() == baseline
    assert sys.getrefcount(a) == refs


# ---- DLPack ---------------------------------------------------------------------------------

def test_numpy_from_dlpack_of_a_kiln_array_shares_its_memory():
    baseline = live()
    r = kiln.evaluate("x * 3", local_dict={"x": np.arange(12.0).reshape(3, 4)})
    k = r.base
    n = np.from_dlpack(k)
    assert address(n) == address(r)
    np.testing.assert_array_equal(n, r)
    del r, k
    np.testing.assert_array_equal(n, np.arange(12.0).reshape(3, 4) * 3)  # the tensor keeps the memory
    del n
    assert live() == baseline


def test_kiln_from_dlpack_of_numpy_shares_memory_and_runs_numpys_deleter():
    base = np.arange(24, dtype=np.int32).reshape(4, 6)
    for v in (base, base[::2, ::-3], base.T):
        refs = sys.getrefcount(v)
        baseline = live()
        k = kiln.from_dlpack(v)
        assert isinstance(k, kiln.Array)
        assert k.shape == v.shape and k.strides == v.strides and k.dtype == v.dtype
        assert k.__array_interface__["data"][0] == address(v)
        np.testing.assert_array_equal(kiln.evaluate("k + 1", local_dict={"k": np.asarray(k)}), v + 1)
        assert sys.getrefcount(v) > refs  # the tensor holds NumPy's array
        del k
        assert live() == baseline
        assert sys.getrefcount(v) == refs  # deleter ran: NumPy's reference dropped


@pytest.mark.parametrize("dtype", DTYPES)
def test_dlpack_round_trips_through_kiln_for_every_dtype(dtype):
    a = (np.arange(10) % 3).astype(dtype)
    k = kiln.asarray(a)
    again = kiln.from_dlpack(k)
    assert again.dtype == a.dtype
    np.testing.assert_array_equal(np.asarray(again), a)
    if dtype is np.bool_:
        with pytest.raises(BufferError, match="no bool"):  # DLPack 0.6 has no bool
            np.from_dlpack(k)
    else:
        np.testing.assert_array_equal(np.from_dlpack(k), a)
        np.testing.assert_array_equal(np.asarray(kiln.from_dlpack(a)), a)

        class Producer:  # any producer: kiln's own capsule, consumed by kiln
            def __dlpack__(self, stream=None):
                return k.__dlpack__(stream)

            def __dlpack_device__(self):
                return k.__dlpack_device__()

        through = kiln.from_dlpack(Producer())
        assert through.__array_interface__["data"][0] == address(a)
        np.testing.assert_array_equal(np.asarray(through), a)


def test_an_unconsumed_capsule_frees_its_tensor():
    source = np.ones(5)
    refs = sys.getrefcount(source)
    baseline = live()
    k = kiln.asarray(source)
    capsule = k.__dlpack__()
    assert "dltensor" in repr(capsule)
    del k  # the capsule's tensor still holds the array, and so the NumPy source
    assert sys.getrefcount(source) == refs + 1
    del capsule  # its destructor runs the deleter: nothing is left
    assert live() == baseline and sys.getrefcount(source) == refs and not kiln._lib._kept


def test_dlpack_protocol_details():
    k = kiln.asarray(np.ones(5))
    assert k.__dlpack_device__() == (1, 0)
    with pytest.raises(BufferError):
        k.__dlpack__(stream=1)
    with pytest.raises(TypeError, match="no __dlpack__"):
        kiln.from_dlpack([1, 2, 3])
    ro = np.ones(3)
    ro.flags.writeable = False
    with pytest.raises(BufferError, match="read-only"):  # DLPack 0.6 tensors are writable
        np.from_dlpack(kiln.asarray(ro))


def test_asarray_keeps_its_source_alive():
    source = np.arange(6.0)
    k = kiln.asarray(source)
    del source
    gc.collect()
    np.testing.assert_array_equal(np.asarray(k), np.arange(6.0))
    assert kiln._lib._kept
    del k
    assert not kiln._lib._kept


def test_kiln_arrays_are_inputs_like_numpy_arrays(tmp_path):
    k = kiln.from_dlpack(np.arange(4.0))
    np.testing.assert_array_equal(kiln.evaluate("k * 2"), np.arange(4.0) * 2)
    np.testing.assert_array_equal(kiln.matmul(k, k), 14.0)
    kiln.save(tmp_path / "k.npy", k)
    np.testing.assert_array_equal(np.load(tmp_path / "k.npy"), np.arange(4.0))


def test_kiln_errors_pickle_for_multiprocessing():
    import pickle
    with pytest.raises(kiln.KilnError) as e:
        kiln.evaluate("a +", local_dict={"a": np.ones(2)})
    again = pickle.loads(pickle.dumps(e.value))
    assert isinstance(again, kiln.KilnError)
    assert (again.status, str(again), again.offset) == (e.value.status, str(e.value), e.value.offset)


# ---- threads --------------------------------------------------------------------------------

def test_eight_python_threads_evaluate_at_once():
    errors = []

    def job(i):
        try:
            rng = np.random.default_rng(i)
            a, b = rng.random(200_000), rng.random(200_000)
            for _ in range(20):
                r = kiln.evaluate("where(a > b, a - b, sqrt(a*b)) * k", local_dict={"a": a, "b": b, "k": i})
                np.testing.assert_allclose(r, np.where(a > b, a - b, np.sqrt(a * b)) * i, rtol=1e-15)
            with pytest.raises(kiln.KilnError, match=f"unknown name 'missing{i}'"):
                kiln.evaluate(f"a + missing{i}", local_dict={"a": a})
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_kiln_releases_the_gil_while_it_computes():
    a = np.random.default_rng(4).random(2_000_000)
    ticks = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks[0] += 1

    before_threads = kiln.set_num_threads(1)
    t = threading.Thread(target=count)
    t.start()
    try:
        time.sleep(0.05)
        # One long call (0.2 s or more): a call holding the GIL would stop the counter for
        # all of it; one that releases it leaves the counter most of its normal pace.
        start, began = ticks[0], time.perf_counter()
        kiln.evaluate("sin(" * 60 + "a" + ")" * 60)
        elapsed = time.perf_counter() - began
        during = ticks[0] - start
        start, began = ticks[0], time.perf_counter()
        time.sleep(elapsed)
        alone = ticks[0] - start
    finally:
        kiln.set_num_threads(before_threads)
        stop.set()
        t.join()
    assert during > 0.2 * alone, (during, alone, elapsed)


def test_thread_budget():
    previous = kiln.set_num_threads(1)
    try:
        assert kiln.get_num_threads() == 1
        assert kiln.set_num_threads(2) == 1
        assert kiln.get_num_threads() == 2
        with pytest.raises(kiln.KilnError):
            kiln.set_num_threads(-1)
    finally:
        kiln.set_num_threads(previous)


# ---- files, creation, random, linear algebra, shared memory ---------------------------------

def test_save_and_load_agree_with_numpy(tmp_path):
    rng = np.random.default_rng(5)
    arrays = [rng.random((30, 7)), np.arange(10, dtype=np.int32)[::-3], rng.random(100) > 0.5,
              np.asfortranarray(rng.random((5, 6)).astype(np.float32))]
    paths = [tmp_path / f"a{i}.npy" for i in range(len(arrays))]
    kiln.save_many(paths, arrays)
    for p, a in zip(paths, arrays):
        np.testing.assert_array_equal(np.load(p), a)
    for loaded, a in zip(kiln.load_many(paths), arrays):
        np.testing.assert_array_equal(loaded, a)
        assert isinstance(loaded.base, kiln.Array)
    mapped = kiln.load(paths[0], mmap=True)
    np.testing.assert_array_equal(mapped, arrays[0])
    mapped[0, 0] = -1.0  # copy-on-write: the file keeps its value
    assert np.load(paths[0])[0, 0] == arrays[0][0, 0]
    np.save(tmp_path / "np.npy", arrays[0])
    np.testing.assert_array_equal(kiln.load(tmp_path / "np.npy"), arrays[0])
    kiln.save(tmp_path / "one.npy", arrays[1], durable=True)
    np.testing.assert_array_equal(np.load(tmp_path / "one.npy"), arrays[1])
    assert [m.tolist() for m in kiln.load_many(paths[:2], mmap=True)] == [a.tolist() for a in arrays[:2]]


def test_file_errors_name_the_path(tmp_path):
    with pytest.raises(kiln.KilnError, match="missing.npy") as e:
        kiln.load(tmp_path / "missing.npy")
    assert e.value.status == 6
    with pytest.raises(kiln.KilnError, match="missing.npy"):
        kiln.load_many([tmp_path / "missing.npy"])
    with pytest.raises(ValueError, match="2 paths but 1 arrays"):
        kiln.save_many([tmp_path / "a.npy", tmp_path / "b.npy"], [np.ones(2)])


def test_creation_matches_numpy():
    np.testing.assert_array_equal(kiln.zeros((3, 4), np.int32), np.zeros((3, 4), np.int32))
    np.testing.assert_array_equal(kiln.ones(5), np.ones(5))
    np.testing.assert_array_equal(kiln.full((2, 2), 7), np.full((2, 2), 7))
    assert kiln.full((2, 2), 7).dtype == np.full((2, 2), 7).dtype
    np.testing.assert_array_equal(kiln.full(3, 2**60, np.int64), np.full(3, 2**60, np.int64))
    np.testing.assert_array_equal(kiln.arange(10), np.arange(10))
    np.testing.assert_allclose(kiln.arange(0, 1, 0.1), np.arange(0, 1, 0.1), rtol=0, atol=1e-15)
    np.testing.assert_allclose(kiln.linspace(0, 1, 11), np.linspace(0, 1, 11), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(kiln.eye(3, 4, 1), np.eye(3, 4, 1))
    with pytest.raises(TypeError, match="uint8"):
        kiln.zeros(3, np.uint8)


def test_random_is_the_same_for_any_thread_count():
    previous = kiln.set_num_threads(1)
    try:
        one = [kiln.random.uniform(9, 300_000), kiln.random.normal(9, (300, 1000), 1.0, 2.0, np.float32),
               kiln.random.integers(9, 300_000, -5, 5)]
        kiln.set_num_threads(2)
        two = [kiln.random.uniform(9, 300_000), kiln.random.normal(9, (300, 1000), 1.0, 2.0, np.float32),
               kiln.random.integers(9, 300_000, -5, 5)]
    finally:
        kiln.set_num_threads(previous)
    for x, y in zip(one, two):
        np.testing.assert_array_equal(x, y)
    u, g, i = one
    assert u.dtype == np.float64 and 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.005
    assert g.dtype == np.float32 and g.shape == (300, 1000) and abs(g.mean() - 1) < 0.02 and abs(g.std() - 2) < 0.02
    assert i.dtype == np.int64 and i.min() == -5 and i.max() == 4
    assert not np.array_equal(kiln.random.uniform(9, 100), kiln.random.uniform(10, 100))
    assert sorted(kiln.random.permutation(3, 50).tolist()) == list(range(50))
    rows = np.arange(20.0).reshape(10, 2)
    kiln.random.shuffle(3, rows)
    np.testing.assert_array_equal(rows[:, 0] // 2, kiln.random.permutation(3, 10))
    assert kiln.random.bernoulli(1, 10_000, 0.25).dtype == np.bool_
    with pytest.raises(kiln.KilnError, match="hi|high|lo"):
        kiln.random.uniform(1, 10, 1.0, 0.0)


def test_matmul_and_solve_match_numpy():
    rng = np.random.default_rng(6)
    a, b = rng.random((60, 40)), rng.random((40, 30))
    np.testing.assert_allclose(kiln.matmul(a, b), a @ b, rtol=1e-12)
    np.testing.assert_allclose(kiln.matmul(a.T.astype(np.float32), a.astype(np.float32)), a.T @ a, rtol=1e-4)
    out = np.empty((60, 30))
    assert kiln.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)
    m = rng.random((20, 20)) + 20 * np.eye(20)
    rhs = rng.random((20, 3))
    np.testing.assert_allclose(kiln.linalg.solve(m, rhs), np.linalg.solve(m, rhs), rtol=1e-10)
    with pytest.raises(kiln.KilnError) as e:
        kiln.linalg.solve(np.zeros((3, 3)), np.ones(3))
    assert e.value.status == 9
    with pytest.raises(kiln.KilnError, match="40|60"):
        kiln.matmul(a, a)


def test_shared_memory_arrays_are_numpy_arrays_over_the_segment():
    name = f"kiln-pytest-{os.getpid()}"
    try:
        s = kiln.shared.create(name, (100, 3), np.float32)
        np.testing.assert_array_equal(s, 0)
        kiln.evaluate("x * 2", local_dict={"x": np.arange(300, dtype=np.float32).reshape(100, 3)}, out=s)
        other = kiln.shared.open(name)  # a second mapping of the same pages
        assert address(other) != address(s)
        np.testing.assert_array_equal(other, np.arange(300).reshape(100, 3) * 2)
        other[0, 0] = 42
        assert s[0, 0] == 42
        np.testing.assert_array_equal(np.load(f"/dev/shm/{name}", mmap_mode="r"), s)
        ro = kiln.shared.open(name, readonly=True)
        assert not ro.flags.writeable
        with pytest.raises(kiln.KilnError):
            kiln.shared.create(name, 3)
        kiln.shared.create(name, 4, replace=True)
    finally:
        kiln.shared.unlink(name)
    with pytest.raises(kiln.KilnError, match=name):
        kiln.shared.open(name)
    np.testing.assert_array_equal(s[0], [42, 2, 4])  # a mapping outlives the name
