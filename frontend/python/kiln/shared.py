"""Arrays in POSIX shared memory (/dev/shm), seen by every process that opens the name,
with no copy. A segment is a .npy file: plain NumPy can also map it,
numpy.load("/dev/shm/" + name, mmap_mode="r+").

The NumPy arrays these return keep the mapping alive; the segment's name lives until
unlink(name), even after every process has closed it.
"""

import numpy as np

from ._lib import check, dtype_code, lib, new_array, shape_arg

_READONLY, _REPLACE = 1, 2


def _name(name):
    if not isinstance(name, str):
        raise TypeError(f"kiln.shared: the segment name must be a str, not a {type(name).__name__}")
    return name.encode()


def create(name, shape, dtype=np.float64, replace=False):
    """A new zero-filled segment, as a writable NumPy array. An existing segment of the name
    is an error unless replace=True."""
    return new_array(lib.kiln_shm_create_flags, _name(name), dtype_code(dtype), *shape_arg(shape),
                     _REPLACE if replace else 0)


def open(name, readonly=False):
    """An existing segment as a NumPy array over its memory (read-only with readonly=True)."""
    return new_array(lib.kiln_shm_open, _name(name), _READONLY if readonly else 0, readonly=readonly)


def unlink(name):
    """Removes the segment's name; mappings stay valid until their arrays are gone."""
    check(lib.kiln_shm_unlink(_name(name)))
