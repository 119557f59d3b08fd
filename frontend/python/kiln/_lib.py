"""libkiln.so through ctypes: finding it, its signatures, errors, and kiln arrays as Python objects.

Everything else in the package is built from what is here. ctypes releases the GIL for
every call into the library, so kiln runs while other Python threads do.
"""

import ctypes
import itertools
import os
from ctypes import POINTER, byref, c_char_p, c_double, c_int, c_int64, c_size_t, c_uint64, c_void_p

import numpy as np


def _find_library():
    """$KILN_LIBRARY, else the library this package was installed with, else the loader's search."""
    path = os.environ.get("KILN_LIBRARY")
    if path:
        return path
    try:
        from . import _config  # written by meson install
        if os.path.exists(_config.LIBRARY):
            return _config.LIBRARY
    except ImportError:
        pass
    import ctypes.util
    found = ctypes.util.find_library("kiln")
    if found:
        return found
    raise ImportError("kiln: libkiln.so not found: set KILN_LIBRARY to its path, or install kiln with meson "
                      "(which installs this package next to the library)")


LIBRARY = _find_library()
lib = ctypes.CDLL(LIBRARY)

_handle_p = POINTER(c_void_p)
_shape_p = POINTER(c_int64)


def _declare(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


_declare("kiln_version", c_char_p)
_declare("kiln_last_error", c_char_p)
_declare("kiln_last_error_offset", ctypes.c_long)
_declare("kiln_status_string", c_char_p, c_int)
_declare("kiln_array_wrap", c_int, c_void_p, c_int, c_int, _shape_p, _shape_p, c_void_p, c_void_p, _handle_p)
_declare("kiln_array_retain", None, c_void_p)
_declare("kiln_array_release", None, c_void_p)
_declare("kiln_array_dtype", c_int, c_void_p)
_declare("kiln_array_ndim", c_int, c_void_p)
_declare("kiln_array_shape", _shape_p, c_void_p)
_declare("kiln_array_strides", _shape_p, c_void_p)
_declare("kiln_array_data", c_void_p, c_void_p)
_declare("kiln_eval", c_int, c_char_p, c_size_t, POINTER(c_char_p), POINTER(c_void_p), c_void_p, _handle_p)
# views as bytes (struct-packed int64s: far cheaper to build than a ctypes array).
_declare("kiln_eval_views", c_int, c_char_p, c_size_t, POINTER(c_char_p), c_char_p, c_size_t, c_void_p,
         _handle_p, POINTER(c_int64))
_declare("kiln_eval_views_into", c_int, c_char_p, c_size_t, POINTER(c_char_p), c_char_p, c_size_t)
_declare("kiln_input_names", c_int, c_char_p, POINTER(c_char_p))
_declare("kiln_explain", c_int, c_char_p, c_size_t, POINTER(c_char_p), POINTER(c_void_p), POINTER(c_char_p))
_declare("kiln_live_buffers", c_int64)
_declare("kiln_live_bytes", c_int64)
_declare("kiln_set_num_threads", c_int, c_int)
_declare("kiln_get_num_threads", c_int)
_declare("kiln_simd_isa", c_char_p)
_declare("kiln_zeros", c_int, c_int, c_int, _shape_p, _handle_p)
_declare("kiln_ones", c_int, c_int, c_int, _shape_p, _handle_p)
_declare("kiln_full", c_int, c_int, c_int, _shape_p, c_double, _handle_p)
_declare("kiln_full_int", c_int, c_int, c_int, _shape_p, c_int64, _handle_p)
_declare("kiln_arange", c_int, c_double, c_double, c_double, c_int, _handle_p)
_declare("kiln_linspace", c_int, c_double, c_double, c_int64, c_int, c_int, _handle_p)
_declare("kiln_eye", c_int, c_int64, c_int64, c_int64, c_int, _handle_p)
_declare("kiln_random_uniform", c_int, c_uint64, c_int, c_int, _shape_p, c_double, c_double, _handle_p)
_declare("kiln_random_normal", c_int, c_uint64, c_int, c_int, _shape_p, c_double, c_double, _handle_p)
_declare("kiln_random_integers", c_int, c_uint64, c_int, c_int, _shape_p, c_int64, c_int64, _handle_p)
_declare("kiln_random_bernoulli", c_int, c_uint64, c_int, _shape_p, c_double, _handle_p)
_declare("kiln_random_permutation", c_int, c_uint64, c_int64, _handle_p)
_declare("kiln_random_shuffle", c_int, c_uint64, c_void_p)
_declare("kiln_matmul", c_int, c_void_p, c_void_p, c_void_p, _handle_p)
_declare("kiln_solve", c_int, c_void_p, c_void_p, _handle_p)
_declare("kiln_shm_create_flags", c_int, c_char_p, c_int, c_int, _shape_p, c_int, _handle_p)
_declare("kiln_shm_open", c_int, c_char_p, c_int, _handle_p)
_declare("kiln_shm_unlink", c_int, c_char_p)
_declare("kiln_load_npy", c_int, c_char_p, c_int, _handle_p)
_declare("kiln_load_npy_many", c_int, c_size_t, POINTER(c_char_p), POINTER(c_void_p))
_declare("kiln_save_npy_flags", c_int, c_char_p, c_void_p, c_int)
_declare("kiln_save_npy_many", c_int, c_size_t, POINTER(c_char_p), POINTER(c_void_p))
_declare("kiln_set_thread_num_threads", c_int, c_int)
_declare("kiln_eval_many", c_int, c_char_p, c_size_t, POINTER(c_char_p), POINTER(c_void_p), c_size_t,
         POINTER(c_char_p), POINTER(c_void_p))
_declare("kiln_split_reductions", c_int, c_char_p, POINTER(c_char_p))
_declare("kiln_generate_window", c_int, c_char_p, c_int, _shape_p, _shape_p, _handle_p)
_declare("kiln_npy_info", c_int, c_char_p, POINTER(c_int), POINTER(c_int), POINTER(_shape_p), POINTER(c_int64),
         POINTER(c_int))
_declare("kiln_npy_create", c_int, c_char_p, c_int, c_int, _shape_p)
_declare("kiln_npy_write_window", c_int, c_char_p, c_int, _shape_p, c_void_p)
_declare("kiln_array_to_dlpack", c_int, c_void_p, _handle_p)
_declare("kiln_array_from_dlpack", c_int, c_void_p, _handle_p)

# kiln_eval_views's record kind for an array given by its array interface C struct (kiln.h).
VIEW_ARRAY_STRUCT = -1

# Status codes (kiln.h).
OK, ERROR_PARSE, ERROR_UNKNOWN_NAME, ERROR_SHAPE, ERROR_TYPE, ERROR_BAD_ARGUMENT, ERROR_IO, \
    ERROR_OUT_OF_MEMORY, ERROR_INTERNAL, ERROR_LINALG = range(10)


class KilnError(ValueError):
    """A kiln call failed. `status` is the kiln_status code, `status_name` its name
    ("parse error", ...), `offset` the byte offset into the expression for parse and
    unknown-name errors (else -1); str() is kiln's message."""

    def __init__(self, status, message, offset=-1):
        super().__init__(message)
        self.status = status
        self.status_name = lib.kiln_status_string(status).decode()
        self.offset = offset

    def __reduce__(self):  # pickled whole: multiprocessing sends workers' errors back
        return (KilnError, (self.status, str(self), self.offset))


def check(status):
    if status != OK:
        raise KilnError(status, lib.kiln_last_error().decode(errors="replace"), lib.kiln_last_error_offset())


# kiln's dtype codes and NumPy's dtypes, both ways.
_CODE_OF = {np.dtype(np.bool_): 0, np.dtype(np.int32): 1, np.dtype(np.int64): 2, np.dtype(np.float32): 3,
            np.dtype(np.float64): 4}
_DTYPE_OF = {code: dtype for dtype, code in _CODE_OF.items()}
DTYPE_NAMES = "bool, int32, int64, float32, float64"


def dtype_code(dtype):
    """kiln's code for a dtype-like (np.float32, "int64", "bool", ...); TypeError for others."""
    try:
        d = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"kiln: {dtype!r} is not a dtype") from e
    code = _CODE_OF.get(d)
    if code is None:
        raise TypeError(f"kiln: dtype {d} is not one of kiln's ({DTYPE_NAMES})")
    return code


def shape_arg(shape):
    """An int or a sequence of ints as (ndim, int64 array)."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    return len(shape), (c_int64 * max(len(shape), 1))(*shape)


class Array:
    """A reference to a kiln array (memory kiln allocated, mapped, or wraps).

    np.asarray(a) views its memory without a copy, for as long as the NumPy array lives;
    so does numpy.from_dlpack(a), through __dlpack__. Results of kiln's functions are
    NumPy arrays over an Array (their .base)."""

    __slots__ = ("_handle", "_readonly", "_interface", "__weakref__")

    def __init__(self, handle, readonly=False, interface=None):
        self._handle = handle  # a reference this object owns
        self._readonly = readonly
        self._interface = interface  # __array_interface__, when the caller already knows it

    def __del__(self):
        release = getattr(lib, "kiln_array_release", None)  # None late in interpreter shutdown
        if release is not None and self._handle:
            release(self._handle)
            self._handle = None

    @property
    def dtype(self):
        return _DTYPE_OF[lib.kiln_array_dtype(self._handle)]

    @property
    def shape(self):
        n = lib.kiln_array_ndim(self._handle)
        return tuple(lib.kiln_array_shape(self._handle)[:n])

    @property
    def strides(self):
        n = lib.kiln_array_ndim(self._handle)
        return tuple(lib.kiln_array_strides(self._handle)[:n])

    @property
    def ndim(self):
        return lib.kiln_array_ndim(self._handle)

    @property
    def __array_interface__(self):
        if self._interface is not None:
            return self._interface
        handle = self._handle
        n = lib.kiln_array_ndim(handle)
        return {"version": 3, "typestr": _DTYPE_OF[lib.kiln_array_dtype(handle)].str,
                "shape": tuple(lib.kiln_array_shape(handle)[:n]), "strides": tuple(lib.kiln_array_strides(handle)[:n]),
                "data": (lib.kiln_array_data(handle) or 0, self._readonly)}

    def numpy(self):
        """A NumPy array over this array's memory (no copy); it keeps the memory alive."""
        return np.asarray(self)

    def __repr__(self):
        return f"kiln.Array(shape={self.shape}, dtype={self.dtype})"

    def __dlpack__(self, stream=None):
        if stream is not None:
            raise BufferError("kiln arrays live in CPU memory: stream must be None")
        if self._readonly:
            raise BufferError("kiln: the array is read-only, and DLPack 0.6 tensors are writable")
        from ._dlpack import export_capsule
        return export_capsule(self._handle)

    def __dlpack_device__(self):
        return (1, 0)  # kDLCPU, device 0


def new_array(call, *args, readonly=False):
    """Runs a kiln function whose last argument is `kiln_array** out`; the result as NumPy."""
    handle = c_void_p()
    check(call(*args, byref(handle)))
    return np.asarray(Array(handle.value, readonly))


# Arrays kiln holds beyond a call (kiln.asarray, DLPack exports of NumPy memory) keep
# their NumPy owner here until kiln's release callback runs, on whatever thread drops the
# last reference (ctypes takes the GIL for it).
_kept = {}
_tokens = itertools.count(1)  # next() is atomic under the GIL: no two handles share one
_RELEASE = ctypes.CFUNCTYPE(None, c_void_p)


@_RELEASE
def _release_kept(token):
    _kept.pop(token, None)


def as_ndarray(value, name):
    """`value` if it is a NumPy array; a number as a 0-d array; TypeError naming `name` otherwise."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, Array):
        return np.asarray(value)  # a view of the same memory
    if isinstance(value, (bool, int, float, np.bool_, np.number)):
        return np.asarray(value)
    raise TypeError(f"kiln: {name!r} is a {type(value).__name__}, not a NumPy array or a number")


def input_code(value, name, writable=False):
    """kiln's dtype code for a NumPy array it can read in place (and write, with writable);
    TypeError or ValueError naming `name` for anything else."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"kiln: {name!r} is a {type(value).__name__}, not a NumPy array")
    code = _CODE_OF.get(value.dtype)
    if code is None:
        native = value.dtype.newbyteorder("=")
        if native in _CODE_OF and not value.dtype.isnative:
            raise TypeError(f"kiln: {name!r} has byte-swapped dtype {value.dtype.str}; use .astype({native.name!r})")
        raise TypeError(f"kiln: {name!r} has dtype {value.dtype}, not one of kiln's ({DTYPE_NAMES})")
    if not value.flags.aligned:
        raise TypeError(f"kiln: {name!r} is not aligned to its {value.dtype} item size; copy it first")
    if writable and not value.flags.writeable:
        raise ValueError(f"kiln: {name!r} is read-only")
    return code


def wrap(value, name, writable=False, keep_alive=False):
    """A kiln handle over a NumPy array's memory (no copy), as an int; the caller releases it.

    With keep_alive the handle keeps `value` alive itself; otherwise the caller must keep
    `value` alive while kiln may use the handle (the length of one call)."""
    code = input_code(value, name, writable)
    ndim = value.ndim
    shape = (c_int64 * ndim)(*value.shape) if ndim else None
    strides = (c_int64 * ndim)(*value.strides) if ndim else None
    release, token = None, None
    if keep_alive:
        token = next(_tokens)
        _kept[token] = value
        release = _release_kept
    handle = c_void_p()
    status = lib.kiln_array_wrap(value.ctypes.data, code, ndim, shape, strides, release, token, byref(handle))
    if status != OK:
        _kept.pop(token, None)
        check(status)
    return handle.value


def asarray(value):
    """A kiln Array over a NumPy array's memory (no copy), keeping the NumPy array alive."""
    if isinstance(value, Array):
        return value
    value = as_ndarray(value, "value")
    return Array(wrap(value, "value", keep_alive=True), readonly=isinstance(value, np.ndarray) and
                 not value.flags.writeable)


def live_buffers():
    """(count, bytes) of array buffers alive in kiln now: a leak check."""
    return lib.kiln_live_buffers(), lib.kiln_live_bytes()
