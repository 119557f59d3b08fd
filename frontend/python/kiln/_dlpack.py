"""DLPack capsules (the legacy DLManagedTensor of DLPack 0.6, as NumPy 1.24 speaks it).

A capsule named "dltensor" owns its tensor; a consumer that takes the tensor renames the
capsule "used_dltensor" and calls the deleter itself when done. A capsule nobody
consumed runs the deleter when it is collected.
"""

import ctypes
from ctypes import byref, c_char_p, c_int, c_void_p

from ._lib import Array, check, lib

_DLTENSOR = b"dltensor"
_USED = b"used_dltensor"

_api = ctypes.pythonapi
_capsule_new = ctypes.PYFUNCTYPE(ctypes.py_object, c_void_p, c_char_p, c_void_p)(("PyCapsule_New", _api))
_capsule_get = ctypes.PYFUNCTYPE(c_void_p, ctypes.py_object, c_char_p)(("PyCapsule_GetPointer", _api))
_capsule_set_name = ctypes.PYFUNCTYPE(c_int, ctypes.py_object, c_char_p)(("PyCapsule_SetName", _api))
_capsule_is_valid = ctypes.PYFUNCTYPE(c_int, ctypes.py_object, c_char_p)(("PyCapsule_IsValid", _api))

_DELETER = ctypes.CFUNCTYPE(None, c_void_p)
# Offset of DLManagedTensor::deleter: DLTensor (data, device, ndim, dtype, shape, strides,
# byte_offset: 48 bytes on LP64) then manager_ctx.
_DELETER_OFFSET = 56


def _run_deleter(tensor):
    deleter = c_void_p.from_address(tensor + _DELETER_OFFSET).value
    if deleter:
        _DELETER(deleter)(tensor)


# In the destructor the capsule is being freed: it is handled as a raw pointer there, so
# that no reference is taken to an object whose count is already zero.
_capsule_is_valid_raw = ctypes.PYFUNCTYPE(c_int, c_void_p, c_char_p)(("PyCapsule_IsValid", _api))
_capsule_get_raw = ctypes.PYFUNCTYPE(c_void_p, c_void_p, c_char_p)(("PyCapsule_GetPointer", _api))


@ctypes.CFUNCTYPE(None, c_void_p)
def _destroy_capsule(capsule):
    if _capsule_is_valid_raw(capsule, _DLTENSOR):  # never consumed: the tensor is still ours
        _run_deleter(_capsule_get_raw(capsule, _DLTENSOR))


_DESTRUCTOR = ctypes.cast(_destroy_capsule, c_void_p).value


def export_capsule(handle):
    """A "dltensor" capsule over a new DLManagedTensor of the kiln array `handle`.

    bool is refused: DLPack 0.6 has no bool type, and a consumer that refuses a tensor
    (NumPy 1.24 does, for DLPack 0.8's bool code) drops the capsule with its exception
    pending, when a Python-level destructor cannot run. kiln.from_dlpack of a kiln Array
    shares the array directly, bool included; C callers get bool as KILN_DLPACK_BOOL."""
    if lib.kiln_array_dtype(handle) == 0:
        raise BufferError("kiln: DLPack 0.6 (NumPy 1.24's) has no bool type; use .astype(numpy.uint8) or "
                          "numpy.asarray() on the kiln array instead")
    tensor = c_void_p()
    check(lib.kiln_array_to_dlpack(handle, byref(tensor)))
    try:
        return _capsule_new(tensor.value, _DLTENSOR, _DESTRUCTOR)
    except BaseException:
        _run_deleter(tensor.value)
        raise


def from_dlpack(x):
    """A kiln Array over the memory of `x`, any object with __dlpack__ (a NumPy array, a
    kiln Array, ...), with no copy. kiln calls the producer's deleter when it is done."""
    if isinstance(x, Array):  # no capsule needed: another reference to the same array
        lib.kiln_array_retain(x._handle)
        return Array(x._handle, x._readonly)
    if not hasattr(x, "__dlpack__"):
        raise TypeError(f"kiln.from_dlpack: a {type(x).__name__} has no __dlpack__ method")
    if hasattr(x, "__dlpack_device__"):
        device = tuple(x.__dlpack_device__())
        if device[0] != 1:
            raise BufferError(f"kiln.from_dlpack: the tensor is on DLPack device {device}, not the CPU (1, 0)")
    capsule = x.__dlpack__()
    if not _capsule_is_valid(capsule, _DLTENSOR):
        raise ValueError("kiln.from_dlpack: __dlpack__ did not return an unconsumed 'dltensor' capsule")
    tensor = _capsule_get(capsule, _DLTENSOR)
    handle = c_void_p()
    check(lib.kiln_array_from_dlpack(tensor, byref(handle)))  # on failure the capsule keeps the tensor
    _capsule_set_name(capsule, _USED)
    return Array(handle.value)
