"""Shared-memory segments between kiln and NumPy processes (Debian's NumPy 1.24).

kiln creates a segment through the C ABI; a second Python process (a real one) attaches
with numpy.load("/dev/shm/NAME", mmap_mode="r+") and both see each other's writes, with
no copy. NumPy's own .npy files placed in /dev/shm attach to kiln too. Bad names, missing
and read-only segments fail with the right status; nothing is left in /dev/shm.

    /usr/bin/python3 -m pytest tests/python/test_shm.py
"""

import ctypes
import os
import stat
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import test_numpy_differential as nd  # noqa: E402

np = nd.np
lib = nd.lib
KILN_ERROR_IO = 6
KILN_SHM_READONLY = 1
KILN_SHM_REPLACE = 2
PREFIX = f"kiln-pytest-{os.getpid()}-"

lib.kiln_shm_create.restype = ctypes.c_int
lib.kiln_shm_create.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int64),
                                ctypes.POINTER(ctypes.c_void_p)]
lib.kiln_shm_create_flags.restype = ctypes.c_int
lib.kiln_shm_create_flags.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int64),
                                      ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
lib.kiln_shm_open.restype = ctypes.c_int
lib.kiln_shm_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
lib.kiln_shm_unlink.restype = ctypes.c_int
lib.kiln_shm_unlink.argtypes = [ctypes.c_char_p]


def check(status):
    if status != nd.KILN_OK:
        raise nd.KilnError(status, lib.kiln_last_error().decode())


def create(name, dtype, shape, flags=0):
    h = ctypes.c_void_p()
    dims = (ctypes.c_int64 * max(len(shape), 1))(*shape)
    check(lib.kiln_shm_create_flags(name.encode(), nd.CODES[np.dtype(dtype)], len(shape), dims, flags, ctypes.byref(h)))
    return h


def attach(name, flags=0):
    h = ctypes.c_void_p()
    check(lib.kiln_shm_open(name.encode(), flags, ctypes.byref(h)))
    return h


def view(handle):
    """A NumPy view (no copy) of a kiln array's memory."""
    dtype = nd.DTYPES[lib.kiln_array_dtype(handle)]
    ndim = lib.kiln_array_ndim(handle)
    shape = tuple(lib.kiln_array_shape(handle)[i] for i in range(ndim))
    n = int(np.prod(shape)) * dtype.itemsize
    buf = (ctypes.c_char * n).from_address(lib.kiln_array_data(handle))
    return np.ndarray(shape, dtype, buffer=buf)


def eval_into(expr, out_handle, **arrays):
    keep = list(arrays.values())
    hs = [nd._wrap(a) for a in keep]
    try:
        names = (ctypes.c_char_p * max(len(hs), 1))(*[k.encode() for k in arrays])
        harr = (ctypes.c_void_p * max(len(hs), 1))(*[h.value for h in hs])
        result = ctypes.c_void_p()
        check(lib.kiln_eval(expr.encode(), len(hs), names, harr, out_handle, ctypes.byref(result)))
    finally:
        for h in hs:
            lib.kiln_array_release(h)


def other_process(code):
    """Runs Python code in a new interpreter (NumPy, no kiln) and returns its stdout."""
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


@pytest.fixture(autouse=True, scope="module")
def no_leftovers():
    yield
    left = [f for f in os.listdir("/dev/shm") if f.startswith(PREFIX)]
    assert not left, f"segments left behind: {left}"


def test_numpy_process_attaches_and_both_see_writes():
    name = PREFIX + "pair"
    h = create(name, np.float64, (1000, 3))
    try:
        x = view(h)
        eval_into("a * 2", h, a=np.arange(3000.0).reshape(1000, 3))  # kiln writes straight into the segment
        assert oct(stat.S_IMODE(os.stat("/dev/shm/" + name).st_mode)) == "0o600"
        out = other_process(
            "import numpy as np\n"
            f"m = np.load('/dev/shm/{name}', mmap_mode='r+')\n"
            "assert m.dtype == np.float64 and m.shape == (1000, 3), (m.dtype, m.shape)\n"
            "assert (m.ravel() == np.arange(3000.0) * 2).all()\n"
            "assert m.ctypes.data % 64 == 0\n"
            "m[10, 1] = -7.5\n"
            "m.flush()\n"
            "print(float(m.sum()))\n")
        assert float(out) == (np.arange(3000.0) * 2).sum() - 62.0 - 7.5
        assert x[10, 1] == -7.5  # NumPy's write, seen by kiln's mapping
        # And the other way: kiln (through a second attachment) writes, NumPy sees.
        h2 = attach(name)
        eval_into("b + 1", h2, b=np.zeros((1000, 3)))
        lib.kiln_array_release(h2)
        assert other_process(f"import numpy as np; print(float(np.load('/dev/shm/{name}', mmap_mode='r').sum()))").strip() == "3000.0"
    finally:
        lib.kiln_array_release(h)
        check(lib.kiln_shm_unlink(name.encode()))


def test_numpy_saved_arrays_in_shm_attach_to_kiln():
    name = PREFIX + "fromnumpy.npy"
    want = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    np.save("/dev/shm/" + name, want)
    try:
        h = attach(name)
        got = view(h)
        assert got.dtype == np.int32 and (got == want).all()
        got[0, 0, 0] = 100
        lib.kiln_array_release(h)
        assert np.load("/dev/shm/" + name)[0, 0, 0] == 100
        np.save("/dev/shm/" + name, np.asfortranarray(want.astype(np.float64)))
        h = attach(name)
        assert (nd._to_numpy(h) == want).all()  # a Fortran-ordered file is a transposed view
        lib.kiln_array_release(h)
    finally:
        os.unlink("/dev/shm/" + name)


def test_read_only_attachment_refuses_writes():
    name = PREFIX + "ro"
    h = create(name, np.float32, (8,))
    try:
        r = attach(name, KILN_SHM_READONLY)
        with pytest.raises(nd.KilnError) as e:
            eval_into("a + 1", r, a=np.ones(8, np.float32))
        assert e.value.status == nd.KILN_ERROR_BAD_ARGUMENT and "read-only" in e.value.message
        lib.kiln_array_release(r)
    finally:
        lib.kiln_array_release(h)
        check(lib.kiln_shm_unlink(name.encode()))


@pytest.mark.parametrize("bad", ["", "a/b", ".x", "..", "../x", "x" * 201, "with space", "semi;colon", "é"])
def test_bad_names(bad):
    with pytest.raises(nd.KilnError) as e:
        create(bad, np.float64, (2,))
    assert e.value.status == nd.KILN_ERROR_BAD_ARGUMENT and "invalid shared segment name" in e.value.message
    with pytest.raises(nd.KilnError):
        attach(bad)


def test_missing_existing_and_foreign():
    with pytest.raises(nd.KilnError) as e:
        attach(PREFIX + "missing")
    assert e.value.status == KILN_ERROR_IO and "no such segment" in e.value.message
    name = PREFIX + "twice"
    h = create(name, np.int64, (3,))
    try:
        with pytest.raises(nd.KilnError) as e:
            create(name, np.int64, (3,))
        assert e.value.status == nd.KILN_ERROR_BAD_ARGUMENT and "already exists" in e.value.message
        lib.kiln_array_release(create(name, np.int64, (5,), KILN_SHM_REPLACE))
        assert np.load("/dev/shm/" + name).shape == (5,)
    finally:
        lib.kiln_array_release(h)
        check(lib.kiln_shm_unlink(name.encode()))
    foreign = PREFIX + "foreign"
    with open("/dev/shm/" + foreign, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + b"\xff\xff" + b"{'descr'")
    try:
        with pytest.raises(nd.KilnError) as e:
            attach(foreign)
        assert e.value.status == KILN_ERROR_IO
    finally:
        os.unlink("/dev/shm/" + foreign)
    with pytest.raises(nd.KilnError) as e:
        check(lib.kiln_shm_unlink((PREFIX + "missing").encode()))
    assert e.value.status == KILN_ERROR_IO
