"""kiln on Dask: every block of a Dask computation gets kiln's fused, threaded evaluation.

    import kiln.dask
    r = kiln.dask.evaluate("2*a + 3*b*c - 1.5", a=a, b=b, c=c)  # Dask arrays in, a lazy one out
    z = kiln.dask.evaluate("(a - mean(a)) / std(a)", a=a)       # reductions: Dask's tree reduction
    u = kiln.dask.random.uniform(7, (n, n), chunks=4096)          # == kiln.random.uniform(7, (n, n))
    x = kiln.dask.from_npy("big.npy", chunks=...)                  # memory-mapped, block by block
    kiln.dask.to_npy("out.npy", r)                                 # blocks written in place

kiln schedules nothing here: Dask does, on its threaded scheduler or a distributed cluster.
An expression is cut at its reductions (kiln_split_reductions). The element-wise rest runs
per block with dask.array.blockwise (Dask aligns the chunks and broadcasts). A reduction's
operand and the reduction's partial result are one fused kiln pass per block, and Dask's
tree reduction (dask.array.reduction) combines the partials, so `(a - mean(a)) / std(a)`
over 100 GB reads each block twice (once for the statistics, once for the result) and
never holds more than a few blocks in any process.

Threads: each task runs kiln under a budget of its own (kiln.set_thread_num_threads): a
share of the cores of the process it runs in, so kiln's threads times the tasks running at
once never exceed them. In a worker of Dask's distributed scheduler that is
cores // (the process's worker threads), capped by OMP_NUM_THREADS where the worker has it
(Dask's nanny sets 1: one thread per task, its policy for every native library); in the
threaded scheduler cores // its pool; in the synchronous scheduler every core.
dask.config.set({"kiln.threads": n}) when the graph is built sets n per task instead.
"""

import itertools
import os
import sys
import threading
from functools import partial

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from . import _core, _lib
from ._lib import KilnError

__all__ = ["evaluate", "from_npy", "generated", "random", "to_npy"]

# ---- the thread budget of a task ---------------------------------------------------------


def _task_threads(configured):
    """kiln's threads for the task now running in this thread (see the module's doc)."""
    if configured:
        return int(configured)
    cores = len(os.sched_getaffinity(0))
    worker_threads = _worker_threads()
    if worker_threads:
        share = cores // worker_threads
        omp = os.environ.get("OMP_NUM_THREADS", "")
        if omp.isdigit() and int(omp) > 0:
            share = min(share, int(omp))
        return max(1, share)
    if threading.current_thread() is threading.main_thread():
        return 0  # the synchronous scheduler: one task at a time, the whole budget
    from dask.system import CPU_COUNT
    return max(1, cores // (dask.config.get("num_workers", None) or CPU_COUNT))


def _worker_threads():
    """The task threads of the distributed workers in this process (0: not in a worker)."""
    if "distributed" not in sys.modules:
        return 0
    from distributed import get_worker
    from distributed.worker import Worker
    try:
        get_worker()
    except ValueError:
        return 0
    return max(1, sum(w.state.nthreads if hasattr(w, "state") else w.nthreads for w in list(Worker._instances)))


def _budget():
    """The budget tasks of a graph built now get: dask.config's kiln.threads, if set."""
    return dask.config.get("kiln.threads", None)


# ---- what runs per block -----------------------------------------------------------------


def _aligned(blocks):
    """The blocks kiln can read in place: a block a distributed worker received from another
    is unpickled from the message's bytes, where it may sit at any offset (an odd one
    refused by kiln's kernels, as by NumPy's flags), and is then copied once."""
    return [b if not isinstance(b, np.ndarray) or b.flags.aligned else b.copy() for b in blocks]


def _evaluate_block(*blocks, text, names, threads):
    with _core.thread_budget(_task_threads(threads)):
        return _core.evaluate(text, dict(zip(names, _aligned(blocks))))


_PLAIN = {"sum": np.sum, "prod": np.prod, "min": np.min, "max": np.max, "any": np.any, "all": np.all}
_MOMENTS = np.dtype([("n", np.float64), ("s", np.float64), ("m2", np.float64)])


def _partial_block(*blocks, kind, text, names, axes, whole, threads):
    """A block's partial result of a reduction over `axes` (kept, of size 1), by the kind of
    partial: plain reductions their own; "sum64" (mean's) a float64 sum; "moments" (var's,
    std's, and mean's beside them) count, sum and squared deviations from the block's mean;
    argmin and argmax (value, index in the whole array)."""
    values, index_blocks = _aligned(blocks[:len(names)]), blocks[len(names):]
    env = dict(zip(names, values))
    block_shape = np.broadcast_shapes(*(np.shape(v) for v in values))
    axis = "" if axes is None else f", axis={axes[0]}" if len(axes) == 1 else f", axis={axes}"
    with _core.thread_budget(_task_threads(threads)):
        if kind in _PLAIN:
            return _core.evaluate(f"{kind}({text}{axis}, keepdims=True)", env)
        t = _fresh_name(names)
        if kind == "sum64":
            return _core.evaluate(f"sum(float64({text}){axis}, keepdims=True)", env)
        if kind == "moments":
            s, v = _core.evaluate_program(f"{t} = float64({text}); {t}s = sum({t}{axis}, keepdims=True); "
                                          f"{t}v = var({t}{axis}, keepdims=True)", (t + "s", t + "v"), env)
            out = np.empty(s.shape, _MOMENTS)
            n = np.prod([block_shape[a] for a in (axes if axes is not None else range(len(block_shape)))])
            out["n"], out["s"], out["m2"] = n, s, v * n
            return out
        best = "min" if kind == "argmin" else "max"
        v, i = _core.evaluate_program(f"{t} = {text}; {t}v = {best}({t}{axis}, keepdims=True); "
                                      f"{t}i = {kind}({t}{axis}, keepdims=True)", (t + "v", t + "i"), env)
    out = np.empty(v.shape, [("v", v.dtype), ("i", np.int64)])
    out["v"] = v
    # The block's index to the whole array's: index_blocks are the global indices of the
    # block's rows along each axis (one axis, or all of them for axis=None).
    if axes is not None:
        out["i"] = i + index_blocks[0][0]
    else:
        local = np.unravel_index(i.reshape(-1)[0], block_shape)
        out["i"] = np.ravel_multi_index(tuple(int(ix[0]) + li for ix, li in zip(index_blocks, local)), whole)
    return out


def _fresh_name(names):
    """A name no input starts with, so that it and its suffixed forms name none."""
    name = "_kiln_t"
    while any(n.startswith(name) for n in names):
        name = "_" + name
    return name


def _keep(x, **_):  # dask.array.reduction's chunk step: the partials already are the chunks
    return x


def _combine(x, axis, keepdims, kind):
    """Partials of a kind (concatenated along `axis`) to one partial, keeping the axes."""
    if kind in _PLAIN:
        return _PLAIN[kind](x, axis=axis, keepdims=True)
    if kind == "sum64":
        return np.sum(x, axis=axis, keepdims=True)
    if kind == "moments":
        # Chan, Golub and LeVeque's pairwise update, over every partial at once.
        n = x["n"].sum(axis=axis, keepdims=True)
        s = x["s"].sum(axis=axis, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            m2 = (x["m2"] + x["n"] * (x["s"] / x["n"] - s / n) ** 2).sum(axis=axis, keepdims=True)
        out = np.empty(n.shape, _MOMENTS)
        out["n"], out["s"], out["m2"] = n, s, m2
        return out
    v, i = x["v"], x["i"]
    best = v.min(axis=axis, keepdims=True) if kind == "argmin" else v.max(axis=axis, keepdims=True)
    hit = v == best
    if v.dtype.kind == "f":
        hit |= np.isnan(v) & np.isnan(best)  # NumPy's arg reductions: the first NaN wins
    out = np.empty(best.shape, x.dtype)
    out["v"] = best
    out["i"] = np.where(hit, i, np.iinfo(np.int64).max).min(axis=axis, keepdims=True)  # ties: the first
    return out


def _aggregate(x, axis, keepdims, kind, partial_kind, result_dtype, count, ddof):
    """Partials to the reduction's value."""
    c = _combine(x, axis, True, partial_kind)
    if kind in _PLAIN:
        r = c
    elif partial_kind == "sum64":
        r = c / count
    elif kind == "mean":
        r = c["s"] / c["n"]
    elif kind in ("var", "std"):
        with np.errstate(divide="ignore", invalid="ignore"):
            r = c["m2"] / np.maximum(c["n"] - ddof, 0)
        if kind == "std":
            r = np.sqrt(r)
    else:
        r = c["i"]
    if not keepdims:
        r = r.reshape(tuple(d for a, d in enumerate(r.shape) if a not in axis))
    return np.asarray(r, dtype=result_dtype)


# ---- evaluate --------------------------------------------------------------------------------

_split_cache = {}


def _stages(expr):
    stages = _split_cache.get(expr)
    if stages is None:
        if len(_split_cache) > 1024:
            _split_cache.clear()
        stages = _split_cache[expr] = _core.split_reductions(expr)
    return stages


def _as_dask(value, name):
    if isinstance(value, da.Array):
        if value.dtype not in _lib._CODE_OF:
            raise TypeError(f"kiln.dask: {name!r} has dtype {value.dtype}, not one of kiln's ({_lib.DTYPE_NAMES})")
        if any(np.isnan(d) for d in value.shape):
            raise ValueError(f"kiln.dask: {name!r} has unknown chunk sizes; call its compute_chunk_sizes() first")
        return value
    value = _lib.as_ndarray(value, name)
    _lib.input_code(value, name)
    return da.from_array(value, chunks="auto" if value.size > 1 << 20 else -1)


def _broadcast_ndim(names, leaves):
    """The dimensions the leaves broadcast to; KilnError (shape) naming them when they do not."""
    try:
        return len(np.broadcast_shapes(*(leaf.shape for leaf in leaves)))
    except ValueError:
        shapes = ", ".join(f"{'a reduction' if n.startswith('_kiln_r') else n} {leaf.shape}"
                           for n, leaf in zip(names, leaves))
        raise KilnError(_lib.ERROR_SHAPE, f"kiln.dask: shapes do not broadcast together: {shapes}") from None


def _indexed(leaves, ndim):
    """blockwise's arguments: each leaf with its axes aligned to the right, as NumPy broadcasts."""
    args = []
    for leaf in leaves:
        args += [leaf, tuple(range(ndim - leaf.ndim, ndim))]
    return args


def _reduction_call(kind, operand, axes, keepdims, ddof):
    text = f"{kind}({operand}"
    if axes is not None:
        text += f", axis={axes}"
    if keepdims:
        text += ", keepdims=True"
    if ddof:
        text += f", ddof={ddof}"
    return text + ")"


def _reduce(kind, axes, keepdims, ddof, operand, env, tiny, threads, with_moments):
    """A reduction stage: (its Dask array, its value over the tiny stand-ins). with_moments:
    a var or std of the same operand and axes is a stage too, so a mean takes its moments
    from the same partials (one pass over the operand for both, not two)."""
    names = _core._input_names(operand)[1]
    leaves = [env[n] for n in names]
    call = _reduction_call(kind, operand, axes, keepdims, ddof)
    small = _core.evaluate(call, {n: tiny[n] for n in names})
    if not leaves:
        return da.from_array(small), small
    ndim = _broadcast_ndim(names, leaves)
    reduced = tuple(range(ndim)) if axes is None else tuple(sorted({a % ndim for a in axes}))
    args = _indexed(leaves, ndim)
    chunks, _ = da.core.unify_chunks(*args)
    if any(0 in chunks[a] and len(chunks[a]) > 1 for a in reduced):
        # Empty blocks along a reduced axis (what compute_chunk_sizes() leaves after a mask)
        # have no partial (a min of nothing is no value): merged away before the tree.
        leaves = [_without_empty_blocks(leaf, ndim, chunks, reduced) for leaf in leaves]
        args = _indexed(leaves, ndim)
        chunks, _ = da.core.unify_chunks(*args)
    meta = np.empty((0,) * small.ndim, small.dtype)
    if all(len(chunks[a]) == 1 for a in reduced):
        # Every reduced axis is one block: the reduction is local to each block.
        out_ind = tuple(a for a in range(ndim) if keepdims or a not in reduced)
        result = da.blockwise(_evaluate_block, out_ind, *args, text=call, names=names, threads=threads,
                              adjust_chunks={a: 1 for a in reduced} if keepdims else None, dtype=small.dtype,
                              meta=meta, token="kiln-reduce", concatenate=True)
        return result, small
    whole = tuple(sum(c) for _, c in sorted(chunks.items()))
    index_args = []
    if kind in ("argmin", "argmax"):
        for a in reduced:  # the global index of every row of a block, along each reduced axis
            index_args += [da.arange(whole[a], chunks=(chunks[a],)), (a,)]
        partial_dtype = np.dtype([("v", _core.evaluate(operand, {n: tiny[n] for n in names}).dtype),
                                  ("i", np.int64)])
    partial_kind = kind
    if kind in ("var", "std") or (kind == "mean" and with_moments):
        partial_kind, partial_dtype = "moments", _MOMENTS  # equal arguments: one layer, shared
    elif kind == "mean":
        partial_kind, partial_dtype = "sum64", np.dtype(np.float64)
    elif kind not in ("argmin", "argmax"):
        partial_dtype = small.dtype
    # Structured partials are declared float64: Dask builds metadata by summing and casting
    # empty arrays of the declared dtype, which structured dtypes refuse, and the partials'
    # declared dtype matters nowhere else (the blocks themselves are passed as they are).
    declared = np.dtype(np.float64) if partial_dtype.names else partial_dtype
    partials = da.blockwise(_partial_block, tuple(range(ndim)), *args, *index_args, kind=partial_kind, text=operand,
                            names=names, axes=axes if axes is None else reduced, whole=whole, threads=threads,
                            adjust_chunks={a: 1 for a in reduced}, dtype=declared,
                            meta=np.empty((0,) * ndim, declared), token="kiln-partial")
    count = int(np.prod([whole[a] for a in reduced]))
    result = da.reduction(partials, _keep, partial(_aggregate, kind=kind, partial_kind=partial_kind,
                                                    result_dtype=small.dtype, count=count, ddof=ddof),
                          combine=partial(_combine, kind=partial_kind), axis=reduced, keepdims=keepdims,
                          dtype=declared, concatenate=True, meta=meta, name="kiln-" + kind)
    return result, small


def _without_empty_blocks(leaf, ndim, chunks, reduced):
    """leaf rechunked so that none of its blocks along the reduced axes is empty (unless the
    axis is: then one empty block, which kiln reduces as it would the whole array)."""
    offset = ndim - leaf.ndim
    wanted = {a - offset: tuple(c for c in chunks[a] if c) or (0,) for a in reduced
              if a >= offset and leaf.shape[a - offset] != 1}
    return leaf.rechunk(wanted) if wanted else leaf


def _lookup(names, arrays, local_dict, global_dict, frame):
    values = {}
    for name in names:
        for scope in (arrays, local_dict if local_dict is not None else frame.f_locals,
                      global_dict if global_dict is not None else frame.f_globals):
            if name in scope:
                values[name] = _as_dask(scope[name], name)
                break
        else:
            raise KilnError(_lib.ERROR_UNKNOWN_NAME, f"unknown name {name!r}: the expression uses it but neither the "
                            "keyword arguments, local_dict nor the caller's variables have it")
    return values


def evaluate(expr, local_dict=None, global_dict=None, **arrays):
    """kiln.evaluate over Dask arrays: a lazy Dask array of the expression's value.

    Names are taken from the keyword arguments, then local_dict (default: the caller's
    locals), then global_dict (default: the caller's globals). Values are Dask arrays of
    kiln's dtypes, or NumPy arrays and numbers (made Dask arrays). The expression is checked
    by kiln against the arrays' shapes and dtypes now (KilnError for what kiln refuses, as
    kiln.evaluate would); blocks are evaluated when the result is computed. The result
    equals kiln.evaluate's on the whole arrays, within float rounding for reductions
    (partials are added in another order). Linear algebra and creation functions inside
    the expression are refused: make them inputs (dask.array.matmul, kiln.dask.random).
    """
    if not isinstance(expr, str):
        raise TypeError(f"kiln.dask: the expression must be a str, not a {type(expr).__name__}")
    try:
        stages = _stages(expr)
    except KilnError as e:
        raise KilnError(e.status, "kiln.dask: " + str(e), e.offset) from None
    names = _core._input_names(expr)[1]
    env = _lookup(names, arrays, local_dict, global_dict, sys._getframe(1))
    # kiln's own checks of dtypes and axes (its messages, positions in expr): the expression
    # over stand-ins of one element and the inputs' dimensions. Shapes are checked per stage.
    tiny = {n: np.ones((1,) * v.ndim, v.dtype) for n, v in env.items()}
    _core.evaluate(expr, tiny)
    threads = _budget()
    spread = {(s[6], s[3]) for s in stages[:-1] if s[2] in ("var", "std")}  # (operand, axes)
    for stage in stages[:-1]:
        _, name, kind, axes, keepdims, ddof, operand = stage
        env[name], tiny[name] = _reduce(kind, axes, keepdims, ddof, operand, env, tiny, threads,
                                        (operand, axes) in spread)
    text = stages[-1][1]
    if text in env:
        return env[text]
    names = _core._input_names(text)[1]
    small = _core.evaluate(text, {n: tiny[n] for n in names})
    if not names:
        return da.from_array(small)
    leaves = [env[n] for n in names]
    ndim = _broadcast_ndim(names, leaves)
    return da.blockwise(_evaluate_block, tuple(range(ndim)), *_indexed(leaves, ndim), text=text, names=names,
                        threads=threads, dtype=small.dtype, meta=np.empty((0,) * ndim, small.dtype),
                        token="kiln-evaluate")


# ---- generated arrays ----------------------------------------------------------------------


def _generate_block(text, start, shape, threads):
    with _core.thread_budget(_task_threads(threads)):
        return _core.generate_window(text, start, shape)


def generated(call, shape, dtype, chunks="auto"):
    """A Dask array of a kiln generator call over `shape` ("uniform(0.0, 1.0, size=(9, 9),
    seed=7)"), each block made alone by kiln_generate_window and bit-identical to the same
    part of the whole array, whatever the chunks."""
    dtype = np.dtype(dtype)
    shape = tuple(int(d) for d in shape)
    chunks = da.core.normalize_chunks(chunks, shape, dtype=dtype)
    name = "kiln-generated-" + tokenize(call, chunks)
    starts = [np.cumsum((0,) + c[:-1]) if c else () for c in chunks]
    threads = _budget()
    graph = {}
    for index in itertools.product(*(range(len(c)) for c in chunks)):
        start = tuple(int(starts[d][i]) for d, i in enumerate(index))
        extent = tuple(int(chunks[d][i]) for d, i in enumerate(index))
        graph[(name,) + index] = (_generate_block, call, start, extent, threads)
    return da.Array(HighLevelGraph.from_collections(name, graph, dependencies=()), name, chunks, dtype=dtype,
                    meta=np.empty((0,) * len(shape), dtype))


def _literal(v):
    return repr(float(v))


def _shape_text(shape):
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    return shape, "(" + "".join(f"{d}, " for d in shape) + ")"


class _Random:
    """kiln.random's functions as Dask arrays: seed first, chunks= last; each element
    depends only on (seed, its index), so the array equals kiln.random's with the same
    seed for any chunks."""

    @staticmethod
    def _make(call, shape, size, seed, dtype, chunks):
        seed = int(seed)
        if not 0 <= seed < 2**63:  # what the expression language's seed= reads
            raise ValueError(f"kiln.dask.random: the seed must be in [0, 2**63), got {seed}")
        text = f"{call}size={size}, seed={seed}, dtype={np.dtype(dtype).name})"
        return generated(text, shape, dtype, chunks)

    def uniform(self, seed, shape, low=0.0, high=1.0, dtype=np.float64, chunks="auto"):
        shape, size = _shape_text(shape)
        return self._make(f"uniform({_literal(low)}, {_literal(high)}, ", shape, size, seed, dtype, chunks)

    def random(self, seed, shape, dtype=np.float64, chunks="auto"):
        return self.uniform(seed, shape, 0.0, 1.0, dtype, chunks)

    def normal(self, seed, shape, loc=0.0, scale=1.0, dtype=np.float64, chunks="auto"):
        shape, size = _shape_text(shape)
        return self._make(f"normal({_literal(loc)}, {_literal(scale)}, ", shape, size, seed, dtype, chunks)

    def standard_normal(self, seed, shape, dtype=np.float64, chunks="auto"):
        return self.normal(seed, shape, 0.0, 1.0, dtype, chunks)

    def integers(self, seed, shape, low, high=None, dtype=np.int64, chunks="auto"):
        if high is None:
            low, high = 0, low
        shape, size = _shape_text(shape)
        return self._make(f"integers({int(low)}, {int(high)}, ", shape, size, seed, dtype, chunks)


random = _Random()


# ---- .npy files ---------------------------------------------------------------------------------

class _NpyBlocks:
    """A .npy file as dask.array.from_array's source: a block is a slice of the file mapped
    read-only by kiln, so no block is copied to be read and a file of any size maps (a
    read-only mapping reserves no memory). Each block maps the file anew and the mapping goes
    with the block: the pages a worker touched count in its memory (its RSS) only while it
    holds the block, as Dask's memory accounting expects. (One mapping kept per process
    grew every worker's RSS to the size of the file it had read, and distributed paused the
    workers at 80% of their memory limit.) Pickles as its path."""

    def __init__(self, path, dtype, shape, stamp, data_offset, fortran):
        self.path, self.dtype, self.shape, self.stamp = path, np.dtype(dtype), tuple(shape), stamp
        self.data_offset, self.fortran = data_offset, fortran
        self.ndim = len(self.shape)

    def __reduce__(self):
        return (_NpyBlocks, (self.path, self.dtype.str, self.shape, self.stamp, self.data_offset, self.fortran))

    def __getitem__(self, key):
        if _stamp(self.path) != self.stamp:
            raise OSError(f"kiln.dask.from_npy: {self.path} changed after from_npy read its header")
        if self.dtype == np.bool_:
            # kiln checks every byte of a bool file before it maps one (its kernels take 0 or
            # 1 only), which per block would read the whole file each time: the block's bytes
            # are mapped by NumPy and made 0/1 instead (one copy of the block).
            raw = np.memmap(self.path, np.uint8, "r", self.data_offset, self.shape, "F" if self.fortran else "C")
            return raw[key] != 0
        return _core.load(self.path, mmap="r")[key]  # read-only, as the mapping is


def _stamp(path):
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns)


def from_npy(path, chunks="auto"):
    """A .npy file as a Dask array without reading it: each block is a slice of the file as
    kiln maps it (in the process that needs it), so an array bigger than any machine's
    memory is read block by block. The file must be mappable as it is (this machine's byte
    order); it must not change while the array is in use (a block read after a change is
    an error)."""
    path = os.path.abspath(os.fsdecode(path))
    dtype, shape, data_offset, flags = _core.npy_info(path)
    if not flags & _core.NPY_MAPPABLE:
        raise KilnError(_lib.ERROR_IO, f"kiln.dask.from_npy: {path} cannot be mapped as it is (byte-swapped or "
                        "misaligned data); rewrite it once with kiln.save(path, kiln.load(path))")
    stamp = _stamp(path)
    source = _NpyBlocks(path, dtype, shape, stamp, data_offset, bool(flags & _core.NPY_FORTRAN))
    return da.from_array(source, chunks=chunks, name="kiln-from-npy-" + tokenize(path, stamp, chunks),
                         asarray=False, fancy=False, meta=np.empty((0,) * len(shape), dtype))


class _NpyWindows:
    """dask.array.store's target: block i is written into the .npy file at its window."""

    def __init__(self, path):
        self.path = path

    def __setitem__(self, key, block):
        _core.npy_write_window(self.path, tuple(k.start or 0 for k in key), _aligned([np.asarray(block)])[0])


def _finish_npy(_stored, partial_path, path, durable):
    if durable:
        fd = os.open(partial_path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(partial_path, path)
    if durable:
        fd = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _create_npy(partial_path, dtype, shape):
    _core.npy_create(partial_path, dtype, shape)
    return partial_path


def _after(block, _created):  # a block, once the file it goes into exists
    return block


def to_npy(path, x, durable=False, compute=True):
    """Writes a Dask array as a .npy file, each block by the task that has it, in place
    into one file (no process holds more than its blocks). The file is written under a
    temporary name next to `path` and renamed to it when every block is in, so `path` is
    never half-written: on failure the temporary is removed and `path` is as it was.
    durable=True also fsyncs the file and its folder. Every process must see the same file
    system. With compute=False returns a dask.delayed that does it all when computed (the
    temporary is made by its first task; if the computation fails, `path` is still as it
    was, but the temporary, `<path>.kiln-partial-*`, is left for the caller to remove)."""
    path = os.path.abspath(os.fsdecode(path))
    x = _as_dask(x, "x")
    partial_path = f"{path}.kiln-partial-{tokenize(x.name, os.getpid(), threading.get_ident())[:16]}"
    if not compute:
        created = dask.delayed(_create_npy)(partial_path, x.dtype.str, x.shape)
        gated = x.map_blocks(_after, created, dtype=x.dtype, meta=np.empty((0,) * x.ndim, x.dtype))
        stored = da.store(gated, _NpyWindows(partial_path), lock=False, compute=False)
        return dask.delayed(_finish_npy)(stored, partial_path, path, durable)
    _core.npy_create(partial_path, x.dtype, x.shape)
    try:
        da.store(x, _NpyWindows(partial_path), lock=False)
        _finish_npy(None, partial_path, path, durable)
    except BaseException:
        if os.path.exists(partial_path):
            os.unlink(partial_path)
        raise
    return None
