"""kiln.evaluate and the functions over kiln's C ABI that take and give NumPy arrays."""

import contextlib
import ctypes
import os
import struct
import sys
import threading
from ctypes import POINTER, byref, c_char_p, c_int, c_int64, c_void_p

import numpy as np

from . import _lib
from ._lib import Array, as_ndarray, check, dtype_code, input_code, lib, new_array, shape_arg, wrap

# Expression text -> (encoded text, its input names): kiln parses each text once for its
# names (and once more, cached by kiln, for its plan).
_names_cache = {}


def _input_names(expr):
    """(encoded text, input names, names as a C array) of an expression, parsed once per text."""
    entry = _names_cache.get(expr)
    if entry is None:
        if not isinstance(expr, str):
            raise TypeError(f"kiln: the expression must be a str, not a {type(expr).__name__}")
        text = expr.encode()
        names = c_char_p()
        check(lib.kiln_input_names(text, byref(names)))
        names = tuple(names.value.decode().split())
        entry = (text, names, (c_char_p * max(len(names), 1))(*(n.encode() for n in names)))
        if len(_names_cache) > 4096:  # a program generating texts must not grow this forever
            _names_cache.clear()
        _names_cache[expr] = entry
    return entry


def _lookup(names, local_dict, global_dict, frame):
    """The values of `names` as numexpr finds them: local_dict, else the caller's locals, then
    global_dict, else the caller's globals."""
    if local_dict is None:
        local_dict = frame.f_locals
    if global_dict is None:
        global_dict = frame.f_globals if frame is not None else {}
    values = []
    for name in names:
        if name in local_dict:
            value = local_dict[name]
        elif name in global_dict:
            value = global_dict[name]
        else:
            raise _lib.KilnError(_lib.ERROR_UNKNOWN_NAME, f"unknown name {name!r}: the expression uses it but neither "
                                 "local_dict nor the caller's variables have it")
        values.append(value if type(value) is np.ndarray else as_ndarray(value, name))
    return values


def _call_with_inputs(names, values, run, out=None, c_names=None):
    """Wraps `values` (NumPy arrays the caller keeps alive for the call) without copies, runs
    run(n, c_names, handles, out_handle) and releases the wraps whatever happens."""
    n = len(names)
    handles = (c_void_p * max(n, 1))()
    if c_names is None:
        c_names = (c_char_p * max(n, 1))(*(name.encode() for name in names))
    out_handle = None
    try:
        for i, value in enumerate(values):
            handles[i] = wrap(value, names[i])
        if out is not None:
            out_handle = wrap(out, "out", writable=True)
        return run(n, c_names, handles, out_handle)
    finally:
        for i in range(n):
            if handles[i]:
                lib.kiln_array_release(handles[i])
        if out_handle:
            lib.kiln_array_release(out_handle)


# PyCapsule_GetPointer: the address of an array's array interface struct (__array_struct__).
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, c_char_p]
_STRUCT_RECORD = (_lib.VIEW_ARRAY_STRUCT, 0)


def _views(values):
    """kiln_eval_views's records of `values` (NumPy arrays), packed as int64s, and the
    capsules that must live until the call returns (they own the structs): each array by
    its array interface C struct (KILN_VIEW_ARRAY_STRUCT), 370 ns an array where building
    its __array_interface__ dict took 650."""
    capsules = [value.__array_struct__ for value in values]
    views = []
    for capsule in capsules:
        views.append(_capsule_pointer(capsule, None))
        views += _STRUCT_RECORD
    packer = _packers.get(len(views))
    if packer is None:
        packer = _packers[len(views)] = struct.Struct(f"={len(views)}q").pack
    return packer(*views), len(views), capsules


def _check_views(status, names, values):
    """Raises for a failed kiln_eval_views call: the TypeError naming a value kiln cannot
    read in place (as input_code words it), else kiln's error."""
    if status != _lib.OK:
        for name, value in zip(names, values):
            input_code(value, name)
        check(status)


_packers = {}
_TYPESTR_OF_CODE = {code: d.str for d, code in _lib._CODE_OF.items()}
_eval_views = lib.kiln_eval_views
_eval_views_into = lib.kiln_eval_views_into


def evaluate(expr, local_dict=None, global_dict=None, out=None):
    """Evaluates `expr` in one fused, parallel pass, like numexpr.evaluate.

    Names in the expression are taken from local_dict (default: the caller's local
    variables), then global_dict (default: the caller's globals). Values are NumPy arrays
    of bool, int32, int64, float32 or float64, of any strides (read in place, no copy), or
    Python/NumPy numbers (0-d). The result is a new NumPy array over memory kiln allocated
    (no copy; freed when NumPy drops it); with out= it is written into `out` (broadcast and
    cast as NumPy's same_kind rules) and `out` is returned. On any error `out` is untouched.
    Raises TypeError for a value kiln cannot take (naming the variable) and KilnError for
    what kiln refuses (parse errors, shapes, dtypes).
    """
    text, names, c_names = _input_names(expr)
    values = _lookup(names, local_dict, global_dict, sys._getframe(1))
    if out is not None:  # described after the inputs, written in place: no handle to make
        if type(out) is not np.ndarray or not out.flags.writeable:
            input_code(out, "out", writable=True)  # raises the error that names what is wrong
        values.append(out)
        views, views_len, capsules = _views(values)  # capsules: alive until the call returns
        _check_views(_eval_views_into(text, len(names), c_names, views, views_len), names + ("out",), values)
        return out
    views, views_len, capsules = _views(values)  # capsules: alive until the call returns
    result = c_void_p()
    info = (c_int64 * 67)()
    _check_views(_eval_views(text, len(names), c_names, views, views_len, None, byref(result), info), names, values)
    ndim = info[2]
    described = info[3:3 + 2 * ndim]
    interface = {"version": 3, "typestr": _TYPESTR_OF_CODE[info[1]], "shape": tuple(described[:ndim]),
                 "strides": tuple(described[ndim:]), "data": (info[0], False)}
    return np.asarray(Array(result.value, False, interface))


def explain(expr, local_dict=None, global_dict=None):
    """The fused plan kiln would run for `expr` over these arrays, as text (evaluates nothing)."""
    text, names, c_names = _input_names(expr)
    values = _lookup(names, local_dict, global_dict, sys._getframe(1))

    def run(n, c_names, handles, _):
        plan = c_char_p()
        check(lib.kiln_explain(text, n, c_names, handles, byref(plan)))
        return plan.value.decode()

    return _call_with_inputs(names, values, run, None, c_names)


def evaluate_program(program, results, local_dict):
    """Several results of one program (kiln_eval_many) over the NumPy arrays of local_dict,
    as a tuple in `results` order: "t = a*b; s = sum(t); m = max(t)" with ("s", "m")."""
    text = program.encode()
    _, names, c_names = _input_names(program)
    values = _lookup(names, local_dict, {}, None)
    wanted = (c_char_p * len(results))(*(r.encode() for r in results))

    def run(n, c_names, handles, _):
        outs = (c_void_p * len(results))()
        check(lib.kiln_eval_many(text, n, c_names, handles, len(results), wanted, outs))
        return tuple(np.asarray(Array(outs[i])) for i in range(len(results)))

    return _call_with_inputs(names, values, run, None, c_names)


def set_num_threads(n):
    """Sets kiln's one thread budget (0 = every core) and returns the previous one, as
    numexpr.set_num_threads does. Evaluation, fills, I/O and BLAS share it."""
    previous = lib.kiln_get_num_threads()
    check(lib.kiln_set_num_threads(int(n)))
    return previous


def get_num_threads():
    """The number of worker threads kiln's work shares (the calling thread's own budget
    while it has one)."""
    return lib.kiln_get_num_threads()


_thread_budget = threading.local()


def set_thread_num_threads(n):
    """A budget for the kiln work the calling thread starts, apart from the process's:
    n > 0 threads (1: on this thread alone), 0 for the process's again. Returns the
    previous one (0: none). For hosts running several tasks at once on their own threads
    (kiln.dask gives each Dask task its share of the cores): the calls of every thread draw
    on one pool of at most as many threads as cores, so they never oversubscribe it."""
    previous = getattr(_thread_budget, "n", 0)
    check(lib.kiln_set_thread_num_threads(int(n)))
    _thread_budget.n = int(n)
    return previous


@contextlib.contextmanager
def thread_budget(n):
    """set_thread_num_threads(n) for the body of a with statement, restored after."""
    previous = set_thread_num_threads(n)
    try:
        yield
    finally:
        set_thread_num_threads(previous)


def simd_isa():
    """The SIMD instruction set kiln's kernels run on ("avx512", "avx2", "sse2")."""
    return lib.kiln_simd_isa().decode()


def from_dlpack(x):
    """A kiln Array over `x`'s memory (any object with __dlpack__), with no copy."""
    from ._dlpack import from_dlpack as take
    return take(x)


# ---- creating arrays (filled in parallel) ------------------------------------------

def zeros(shape, dtype=np.float64):
    """numpy.zeros, filled in parallel."""
    return new_array(lib.kiln_zeros, dtype_code(dtype), *shape_arg(shape))


def ones(shape, dtype=np.float64):
    """numpy.ones, filled in parallel."""
    return new_array(lib.kiln_ones, dtype_code(dtype), *shape_arg(shape))


def full(shape, fill_value, dtype=None):
    """numpy.full, filled in parallel; dtype defaults to the fill value's, as NumPy's."""
    if dtype is None:
        dtype = np.asarray(fill_value).dtype
    code = dtype_code(dtype)
    if isinstance(fill_value, (int, np.integer)) and not isinstance(fill_value, (bool, np.bool_)):
        return new_array(lib.kiln_full_int, code, *shape_arg(shape), int(fill_value))
    return new_array(lib.kiln_full, code, *shape_arg(shape), float(fill_value))


def arange(start, stop=None, step=1, dtype=None):
    """numpy.arange; dtype defaults to int64 for integer arguments, else float64."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        dtype = np.int64 if all(isinstance(v, (int, np.integer)) for v in (start, stop, step)) else np.float64
    return new_array(lib.kiln_arange, float(start), float(stop), float(step), dtype_code(dtype))


def linspace(start, stop, num=50, endpoint=True, dtype=np.float64):
    """numpy.linspace."""
    return new_array(lib.kiln_linspace, float(start), float(stop), int(num), int(bool(endpoint)), dtype_code(dtype))


def eye(N, M=None, k=0, dtype=np.float64):
    """numpy.eye."""
    return new_array(lib.kiln_eye, int(N), int(N if M is None else M), int(k), dtype_code(dtype))


# ---- linear algebra ----------------------------------------------------------------

def matmul(a, b, out=None):
    """numpy.matmul on OpenBLAS under kiln's thread budget; with out= written in place."""
    a, b = as_ndarray(a, "a"), as_ndarray(b, "b")

    def run(n, c_names, handles, out_handle):
        if out_handle is not None:
            check(lib.kiln_matmul(handles[0], handles[1], out_handle, None))
            return out
        result = c_void_p()
        check(lib.kiln_matmul(handles[0], handles[1], None, byref(result)))
        return np.asarray(Array(result.value))

    return _call_with_inputs(("a", "b"), (a, b), run, out)


# ---- .npy files ------------------------------------------------------------------------

_NPY_MMAP, _NPY_DURABLE, _NPY_READONLY = 1, 2, 8


def _path(p):
    return os.fsencode(p)


def load(path, mmap=False):
    """A .npy file as a NumPy array, read in parallel; with mmap=True mapped (copy-on-write:
    writing the array never changes the file) where the file allows it; with mmap="r" mapped
    read-only (the array is not writeable), which also maps files far bigger than memory."""
    if mmap not in (False, True, "r"):
        raise ValueError(f"kiln.load: mmap must be False, True or 'r', not {mmap!r}")
    if mmap == "r":
        return new_array(lib.kiln_load_npy, _path(path), _NPY_MMAP | _NPY_READONLY, readonly=True)
    return new_array(lib.kiln_load_npy, _path(path), _NPY_MMAP if mmap else 0)


def load_many(paths, mmap=False):
    """Several .npy files at once (their reads overlap), as a list in `paths`' order. On
    failure nothing is returned and the error is the first failing path's."""
    paths = [_path(p) for p in paths]
    if mmap:
        return [load(p, mmap=True) for p in paths]
    n = len(paths)
    outs = (c_void_p * max(n, 1))()
    check(lib.kiln_load_npy_many(n, (c_char_p * max(n, 1))(*paths), outs))
    return [np.asarray(Array(outs[i])) for i in range(n)]


def save(path, array, durable=False):
    """Writes `array` (any strides) as a .npy file, atomically: a failed save leaves any
    existing file as it was. durable=True also fsyncs the file and its folder."""
    array = as_ndarray(array, "array")
    handle = wrap(array, "array")
    try:
        check(lib.kiln_save_npy_flags(_path(path), handle, _NPY_DURABLE if durable else 0))
    finally:
        lib.kiln_array_release(handle)


def save_many(paths, arrays):
    """Writes arrays[i] to paths[i], the files at once; each file atomically."""
    paths = [_path(p) for p in paths]
    arrays = [as_ndarray(a, f"arrays[{i}]") for i, a in enumerate(arrays)]
    if len(paths) != len(arrays):
        raise ValueError(f"kiln.save_many: {len(paths)} paths but {len(arrays)} arrays")
    n = len(paths)

    def run(count, c_names, handles, _):
        check(lib.kiln_save_npy_many(count, (c_char_p * max(count, 1))(*paths), handles))

    _call_with_inputs([f"arrays[{i}]" for i in range(n)], arrays, run)


# ---- blocks of arrays (kiln.dask) --------------------------------------------------------

def split_reductions(expr):
    """kiln_split_reductions: [("reduce", name, reduction, axes (tuple or None), keepdims,
    ddof, operand), ...] then ("result", expression)."""
    text = c_char_p()
    check(lib.kiln_split_reductions(expr.encode(), byref(text)))
    stages = []
    for line in text.value.decode().splitlines():
        fields = line.split("\t")
        if fields[0] == "reduce":
            _, name, reduction, axes, keepdims, ddof, operand = fields
            axes = None if axes == "None" else tuple(int(a) for a in axes.split(",") if a)
            stages.append(("reduce", name, reduction, axes, keepdims == "1", int(ddof), operand))
        else:
            stages.append(("result", fields[1]))
    return stages


def generate_window(expr, start, shape):
    """The window [start, start + shape) of a generator call ("uniform(size=(9, 9), seed=1)")."""
    ndim, first = shape_arg(start)
    _, extent = shape_arg(shape)
    return new_array(lib.kiln_generate_window, expr.encode(), ndim, first, extent)


NPY_FORTRAN, NPY_MAPPABLE = 1, 2


def npy_info(path):
    """(dtype, shape, data offset, flags) of a .npy file, from its header alone."""
    code, ndim, shape, offset, flags = c_int(), c_int(), POINTER(c_int64)(), c_int64(), c_int()
    check(lib.kiln_npy_info(_path(path), byref(code), byref(ndim), byref(shape), byref(offset), byref(flags)))
    return _lib._DTYPE_OF[code.value], tuple(shape[:ndim.value]), offset.value, flags.value


def npy_create(path, dtype, shape):
    """A C-order .npy file of dtype and shape, sized but not filled, for npy_write_window."""
    check(lib.kiln_npy_create(_path(path), dtype_code(dtype), *shape_arg(shape)))


def npy_write_window(path, start, array):
    """Writes a NumPy array into the .npy file at path at [start, start + array.shape)."""
    array = as_ndarray(array, "array")
    handle = wrap(array, "array")
    try:
        check(lib.kiln_npy_write_window(_path(path), *shape_arg(start), handle))
    finally:
        lib.kiln_array_release(handle)
