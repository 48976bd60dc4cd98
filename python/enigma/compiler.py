"""``@enigma.kernel``, ``enigma.compile`` and ``CompiledKernel``."""
from __future__ import annotations

import inspect
import os
import re
import sys
import tempfile
import typing as _pytyping
from dataclasses import dataclass, field

from . import _core
from ._preprocess import preprocess
from ._tensor import Tensor
from ._tracing import EnigmaError, _Trace, _TraceScope, _wrap, _state
from .typing import Numeric, Scalar


class KernelDef:
    """A function decorated with ``@enigma.kernel``. Calling it records a launch
    for the ``@enigma.jit`` path; ``enigma.compile(kdef)`` traces it."""

    def __init__(self, fn, scope=None):
        self.fn = fn
        self.name = fn.__name__
        self.signature = inspect.signature(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        # Names that string annotations (``from __future__ import annotations``)
        # refer to, taken from the scope that defined the kernel: a kernel made
        # inside a function may be annotated with that function's locals.
        self._annotation_scope = scope or {}

    def __repr__(self):
        return f"<enigma.kernel {self.name}>"

    def __call__(self, *args, **kwargs):
        return KernelHandle(self, args, kwargs)


class KernelHandle:
    """A kernel with arguments bound, waiting for ``launch(grid, block)`` (JIT path)."""

    def __init__(self, kernel_def, args, kwargs):
        self.kernel_def = kernel_def
        self.args = args
        self.kwargs = kwargs

    def launch(self, grid, block):
        """Records this kernel and its launch shape for ``enigma.compile(jit_fn, ...)``.
        ``grid`` is in threads (as ``execute``'s grid), ``block`` the threadgroup size."""
        ctx = getattr(_state, "jit", None)
        if ctx is None:
            raise RuntimeError("kernel.launch() called outside enigma.compile() context")
        ctx.append((self, tuple(grid) if isinstance(grid, (tuple, list)) else (grid, 1, 1),
                    tuple(block) if isinstance(block, (tuple, list)) else (block, 1, 1)))


class JitDef:
    """A function decorated with ``@enigma.jit``: host-side Python that builds
    tensors and layouts and launches one ``@enigma.kernel``."""

    def __init__(self, fn):
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self):
        return f"<enigma.jit {self.name}>"


def jit(fn) -> JitDef:
    """Declares a host function for ``enigma.compile(jit_fn, *tensors)``."""
    if isinstance(fn, JitDef):
        return fn
    if not callable(fn):
        raise TypeError(f"@enigma.jit expects a function, got {type(fn).__name__}")
    return JitDef(fn)


def kernel(fn) -> KernelDef:
    """Declares a kernel. Every parameter is annotated with a dtype (a device
    buffer of that element type) or ``enigma.Scalar(dtype)`` (a value)."""
    if isinstance(fn, KernelDef):
        return fn
    if not callable(fn):
        raise TypeError(f"@enigma.kernel expects a function, got {type(fn).__name__}")
    return KernelDef(fn, _string_annotation_scope(fn, sys._getframe(1)))


def _string_annotation_scope(fn, frame) -> dict:
    """The defining scope's values of the names used in string annotations."""
    texts = [a for a in getattr(fn, "__annotations__", {}).values() if isinstance(a, str)]
    if not texts:
        return {}
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", " ".join(texts)))
    scope = {n: v for n, v in frame.f_locals.items() if n in names}
    code = getattr(fn, "__code__", None)
    for n, cell in zip(code.co_freevars if code else (), getattr(fn, "__closure__", None) or ()):
        if n in names:
            try:
                scope[n] = cell.cell_contents
            except ValueError:  # an empty cell
                pass
    return scope


class _LazySource:
    """``CompiledKernel.metal_source``: the MSL is generated on first read (a
    kernel that runs on the CPU or CUDA never needs it), then kept."""

    def __set_name__(self, owner, name):
        self.slot = f"_{name}_text"

    def __get__(self, obj, owner=None):
        if obj is None:
            return self  # the dataclass default: generated when read
        text = obj.__dict__.get(self.slot)
        if text is None and obj._core is not None:
            text = obj.__dict__[self.slot] = obj._core.source("metal")
        return text

    def __set__(self, obj, value):
        obj.__dict__[self.slot] = None if isinstance(value, _LazySource) else value


@dataclass
class CompiledKernel:
    """A traced, verified and optimised kernel. Backend code is produced lazily
    per device and cached (in memory and on disk); ``metal_source`` and
    ``source(backend)`` generate their text on first use."""

    kernel_name: str
    metallib_path: str | None
    metallib_bytes: bytes | None
    metal_source: str = _LazySource()
    mlir_source: str | None = None
    grid: tuple | None = None
    block: tuple | None = None
    scalar_params: list | None = None
    num_params: int | None = None
    param_names: list | None = None
    _core: object = field(default=None, repr=False, compare=False)
    _param_kinds: list | None = field(default=None, repr=False, compare=False)
    _tensors: list | None = field(default=None, repr=False, compare=False)  # @jit: the bound tensors
    _written: list | None = field(default=None, repr=False, compare=False)
    # Debug builds: the lane-shuffle ops the kernel uses (a dispatch over partial
    # simdgroups then warns, see runtime._warn_partial_shuffles).
    _debug_shuffles: tuple = field(default=(), repr=False, compare=False)

    @property
    def ir_source(self) -> str | None:
        """The Enigma IR as text (``mlir_source`` is kept as an alias)."""
        return self.mlir_source

    @property
    def kernel_source(self) -> str:
        return self.metal_source

    @property
    def has_metallib(self) -> bool:
        return self.metallib_path is not None and self.metallib_bytes is not None

    def source(self, backend: str = "metal", constants=None) -> str:
        """Generated source for ``"metal"`` (MSL), ``"cuda"`` (CUDA C++ for NVRTC) or ``"cpu"`` (C++). A
        kernel with function constants is specialised by ``constants`` ({index: (type_name, value)}); the
        CPU and CUDA need them, the MSL declares them when none are given."""
        if backend in ("metal", "msl") and not constants:
            return self.metal_source
        if self._core is None:
            raise RuntimeError(f"kernel '{self.kernel_name}' was not compiled by enigma.compile(); "
                               "only its Metal source is known")
        if constants:
            from .runtime import _constants_arg
            return self._core.source(backend, constants=_constants_arg(constants))
        cache = self.__dict__.setdefault("_source_cache", {})
        if backend not in cache:
            cache[backend] = self._core.source(backend)
        return cache[backend]

    def export_metal(self, path: str | os.PathLike | None = None) -> str:
        """Writes the MSL to ``path`` (default ``<kernel_name>.metal`` in the
        current directory) and returns the path."""
        path = os.fspath(path) if path is not None else f"{self.kernel_name}.metal"
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.metal_source)
        return path


def _resolve_annotations(kdef: KernelDef) -> dict:
    """Annotations, evaluated (so ``from __future__ import annotations`` works)."""
    fn = kdef.fn
    raw = getattr(fn, "__annotations__", {})
    if any(isinstance(v, str) for v in raw.values()):
        try:
            return _pytyping.get_type_hints(fn, localns=kdef._annotation_scope)
        except Exception as e:  # noqa: BLE001 - report which annotation failed
            raise TypeError(f"kernel '{kdef.name}': cannot evaluate the parameter annotations: {e}") from e
    return dict(raw)


def _param_type(kdef: KernelDef, name: str, ann):
    if ann is inspect.Parameter.empty:
        raise TypeError(f"Kernel parameter '{name}' needs a type annotation")
    if isinstance(ann, Scalar):
        return "scalar", ann.metal_name
    if isinstance(ann, Numeric):
        return "buffer", ann.metal_name
    if isinstance(ann, type) and issubclass(ann, Numeric) and ann is not Numeric:
        return "buffer", ann.metal_name
    raise TypeError(f"Unsupported kernel parameter annotation: {ann!r} (parameter '{name}' of kernel "
                    f"'{kdef.name}'; use a dtype such as enigma.f32 or enigma.Scalar(enigma.u32))")


_VECTORISABLE = ("float", "half", "bfloat")


def _vec_dtype(dtype: str, vec_width: int) -> str:
    return f"vec<{vec_width},{dtype}>" if vec_width and dtype in _VECTORISABLE else dtype


def _check_vec_width(vec_width):
    if vec_width in (0, None):
        return 0
    if isinstance(vec_width, bool) or not isinstance(vec_width, int) or vec_width not in (2, 3, 4):
        raise EnigmaError(f"compile: vec_width must be 2, 3 or 4 (or 0 for none), got {vec_width!r}")
    return vec_width


def _trace(kdef: KernelDef, vec_width=0):
    trace = _Trace(kdef.name)
    b = trace.builder
    anns = _resolve_annotations(kdef)
    code = kdef.fn.__code__
    b.set_location(code.co_filename, code.co_firstlineno)
    args = []
    kinds = []
    for i, (pname, p) in enumerate(kdef.signature.parameters.items()):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"kernel '{kdef.name}': *args/**kwargs parameters are not supported ('{pname}')")
        kind, dtype = _param_type(kdef, pname, anns.get(pname, p.annotation))
        if kind == "buffer":
            dtype = _vec_dtype(dtype, vec_width)  # the traced dtype is the vector too
        kinds.append((pname, kind, dtype))
        if kind == "buffer":
            t = Tensor(pname, i, dtype)
            t._trace = trace
            t._param = b.add_buffer_param(pname, dtype)
            trace.cache.setdefault("memories", {})[pname] = t._param
            trace.cache.setdefault("params", {})[pname] = t  # re-wrapping binds by name (Tensor._bind_by_name)
            args.append(t)
        else:
            args.append(_wrap(trace, b.add_scalar_param(pname, dtype)))
    positional = [a for a, (_, p) in zip(args, kdef.signature.parameters.items())
                  if p.kind != p.KEYWORD_ONLY]
    keywords = {n: a for a, (n, p) in zip(args, kdef.signature.parameters.items()) if p.kind == p.KEYWORD_ONLY}
    return _run_body(kdef, trace, positional, keywords), kinds


def _run_body(kdef, trace, positional, keywords):
    body = preprocess(kdef.fn)  # `for i in enigma.range(...)` becomes a traced loop
    with _TraceScope(trace):
        try:
            result = body(*positional, **keywords)
        except EnigmaError as e:
            located = _with_user_location(e, kdef)
            if located is e:
                raise
            raise located.with_traceback(e.__traceback__) from None
    if result is not None:
        raise EnigmaError(f"kernel '{kdef.name}' returned a value; kernels write their results to "
                          "output buffers and return nothing")
    return trace.builder.finish()


def _jit_roots(given, seed):
    """The distinct buffers behind the tensors the kernel gets, in binding
    order: increasing buffer_index, or, for tensors made without an index
    (enigma.tensor), the order they were given to enigma.compile."""
    def distinct(ts):
        out = []
        for t in ts:
            r = t._root
            if r._identity or (r.buffer_index < 0 and not getattr(r, "_auto_index", False)):
                continue
            if not any(r is x for x in out):
                out.append(r)
        return out
    roots = distinct(given)
    auto = [r for r in roots if getattr(r, "_auto_index", False)]
    if auto and len(auto) != len(roots):
        raise EnigmaError("@jit: give every tensor a buffer index or none (enigma.tensor(..., index=k))")
    if auto:
        order = distinct(seed + given)
        roots.sort(key=lambda r: next(i for i, x in enumerate(order) if x is r))
    else:
        roots.sort(key=lambda r: r.buffer_index)
        idx = [r.buffer_index for r in roots]
        if len(set(idx)) != len(idx):
            raise EnigmaError(f"@jit: two different tensors have the same buffer index ({idx}); "
                              "the index is the binding slot")
    for i, r in enumerate(roots):
        if r.name is None:
            r.name = f"t{i}"
    names = [r.name for r in roots]
    if len(set(names)) != len(names):
        raise EnigmaError(f"@jit: two different tensors share a name: {names}")
    return roots


def _trace_jit(kdef: KernelDef, args, kwargs, vec_width, seed_tensors):
    trace = _Trace(kdef.name)
    b = trace.builder
    code = kdef.fn.__code__
    b.set_location(code.co_filename, code.co_firstlineno)
    given = [a for a in list(args) + list(kwargs.values()) if isinstance(a, Tensor)]
    roots = _jit_roots(given, [t for t in seed_tensors if isinstance(t, Tensor)])
    params = {}
    kinds = []
    for r in roots:
        dtype = _vec_dtype(r.metal_dtype, vec_width)
        params[id(r)] = b.add_buffer_param(r.name, dtype)
        kinds.append((r.name, "buffer", dtype))
        trace.cache.setdefault("memories", {})[r.name] = params[id(r)]  # re-wrapping binds by name

    def bind(a):
        if not isinstance(a, Tensor):
            return a
        t = a._derive(a.layout, a._off.copy())
        t._trace = trace
        t._param = params.get(id(a._root))
        if vec_width and t.metal_dtype is not None:
            t.metal_dtype = _vec_dtype(t.metal_dtype, vec_width)
        if a._coord is not None:
            t._coord = bind(a._coord)
        return t

    ir = _run_body(kdef, trace, [bind(a) for a in args], {k: bind(v) for k, v in kwargs.items()})
    return ir, kinds, roots


def _with_user_location(e: EnigmaError, kdef: KernelDef) -> EnigmaError:
    """Errors raised in a kernel body name the kernel and the user's file:line
    (the innermost traceback frame outside this package); the builder's own
    errors already do."""
    msg = str(e)
    if f"kernel '{kdef.name}'" in msg:
        return e
    package = os.path.dirname(os.path.abspath(__file__))
    where = None
    tb = e.__traceback__
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(package):
            where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    cls = type(e) if issubclass(type(e), EnigmaError) else EnigmaError  # keeps EnigmaTypeError/ValueError
    return cls(f"{where + ': ' if where else ''}kernel '{kdef.name}': {msg}")


def _emit_only(option) -> bool:
    if option is not None:
        return bool(option)
    env = os.environ.get("ENIGMA_EMIT_ONLY", "")
    return env.strip().lower() not in ("", "0", "false", "no", "off")


_SHUFFLES = ("simd_shuffle_down", "simd_shuffle_up", "simd_shuffle_xor", "simd_shuffle", "quad_shuffle_down",
             "quad_shuffle_up", "quad_shuffle_xor", "quad_shuffle")


def _debug(option) -> bool:
    if option is not None:
        return bool(option)
    env = os.environ.get("ENIGMA_DEBUG", "")
    return env.strip().lower() not in ("", "0", "false", "no", "off")


# Every backend's source of every compiled kernel is written here when
# ENIGMA_SOURCE_DUMP_DIR is set; CI compiles them all (MSL against the Metal
# declarations header, CUDA with NVRTC) so codegen errors fail CI without a GPU.
# The backends and their file extensions come from the core's registry.
_SOURCE_EXTENSIONS = {b["name"]: b["source_extension"] for b in _core.backend_table()}
DUMP_BACKENDS = tuple(_SOURCE_EXTENSIONS)


def _file_stem(name: str) -> str:
    """A kernel name as a file name: letters, digits, '_' and '-' only, so
    ``../`` or a path separator cannot leave the folder (names are data)."""
    stem = "".join(c if (c.isascii() and c.isalnum()) or c in "_-" else "_" for c in name)[:64]
    return stem or "kernel"


def _dump_sources(name: str, core) -> dict:
    out = os.environ.get("ENIGMA_SOURCE_DUMP_DIR")
    if not out:
        return {}
    import hashlib
    os.makedirs(out, exist_ok=True)
    texts = []
    for backend in DUMP_BACKENDS:
        try:
            texts.append((backend, core.source(backend)))
        except EnigmaError:  # function constants: specialised per dispatch, nothing to show
            continue
    if any(b == "cuda" for b, _ in texts) and core.cuda_groups_per_block > 1:  # the variant large grids run
        texts.append(("cuda", core.source("cuda", groups_per_block=core.cuda_groups_per_block)))
    if any(b == "cuda" for b, _ in texts) and core.cuda_uses_matrices:  # the tensor-core variant
        texts.append(("cuda", core.source("cuda", matrix_fragments=True)))
    for backend, text in texts:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        path = os.path.join(out, f"{_file_stem(name)}-{digest}.{_SOURCE_EXTENSIONS[backend]}")
        if not os.path.exists(path):
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
    return dict(texts[:len(DUMP_BACKENDS)])


def compile(fn, *args, keep_metal_source=False, dump_ir=False, dump_mlir=False, work_dir=None,
            vec_width=0, emit_only=None, debug=None,
            bounds_check=True) -> CompiledKernel:  # noqa: A001 - reference name
    """Traces ``fn`` (an ``@enigma.kernel``), verifies and optimises its IR and
    emits MSL. Unless emit-only, the kernel is also built for the default device
    now (so build errors surface here and the first dispatch is fast).

    Memory accesses are bounds-checked (out-of-bounds loads read 0, stores and
    atomics are dropped and the dispatch raises). ``bounds_check=False`` turns
    the checks off for this kernel: an out-of-bounds access then reads or
    writes whatever memory lies there, and on the CPU can crash the process.
    ``debug=True`` reports out-of-bounds loads too."""
    if not isinstance(bounds_check, bool):
        raise TypeError(f"compile: bounds_check must be True or False, got {bounds_check!r}")
    if not isinstance(fn, (KernelDef, JitDef)):
        raise TypeError(f"Expected @enigma.kernel or @enigma.jit, got {type(fn).__name__}")
    vec_width = _check_vec_width(vec_width)
    grid = block = roots = None
    if isinstance(fn, JitDef):
        launches = []
        saved = getattr(_state, "jit", None)
        _state.jit = launches
        try:
            fn.fn(*args)
        finally:
            _state.jit = saved
        if not launches:
            raise RuntimeError(f"@jit function '{fn.name}' did not launch any kernel. "
                               "Call kernel_fn(...).launch(grid=..., block=...) inside it.")
        if len(launches) > 1:
            raise EnigmaError(f"@jit function '{fn.name}' launched {len(launches)} kernels; a compiled kernel is "
                              "one launch: split it into one @enigma.jit function per kernel")
        handle, grid, block = launches[0]
        ir, kinds, roots = _trace_jit(handle.kernel_def, handle.args, handle.kwargs, vec_width, args)
        fn = handle.kernel_def
    else:
        ir, kinds = _trace(fn, vec_width)
    ir.optimize()
    ir_text = ir.print()
    dbg = _debug(debug)
    core = _core.CompiledKernelCore(ir, dbg, bounds_check)
    # Only what is asked is generated: the default device's code (precompile
    # below), the MSL when printed or kept, every backend when dumping.
    msl = core.source("metal") if (dump_ir or dump_mlir or keep_metal_source or work_dir is not None) else None
    if dump_ir or dump_mlir:
        print(f"=== IR: {fn.name} ({ir.num_ops} ops) ===")
        print(ir_text, end="")
        print("=== Metal ===")
        print(msl, end="")
        sys.stdout.flush()
    if keep_metal_source or work_dir is not None:
        wd = os.fspath(work_dir) if work_dir is not None else tempfile.mkdtemp(prefix="enigma_")
        os.makedirs(wd, exist_ok=True)
        if keep_metal_source:
            with open(os.path.join(wd, f"{_file_stem(fn.name)}.metal"), "w", encoding="utf-8") as f:
                f.write(msl)
    dumped = _dump_sources(fn.name, core)
    ck = CompiledKernel(
        kernel_name=fn.name, metallib_path=None, metallib_bytes=None, metal_source=msl or dumped.get("metal"),
        mlir_source=ir_text, scalar_params=[(n, i, d) for i, (n, k, d) in enumerate(kinds) if k == "scalar"],
        num_params=len(kinds), param_names=[n for n, _, _ in kinds], _core=core, _param_kinds=kinds,
        grid=grid, block=block, _tensors=roots, _written=[w for _, kind, _, w in ir.params if kind == "buffer"],
        _debug_shuffles=tuple(op for op in _SHUFFLES if re.search(rf"\b{op}\b", ir_text)) if dbg else ())
    if not _emit_only(emit_only):
        from .runtime import _default_device
        core.precompile(_default_device())
    return ck


# The reference's module paths enigma.compiler.compiler / .kernel / .mlir_emitter:
# thin re-exporting modules in _compiler/. They are loaded here, after which
# `enigma.compiler.kernel` is again the decorator (as in the reference).
__path__ = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "_compiler")]
_kernel_decorator = kernel
for _submodule in ("compiler", "kernel", "mlir_emitter"):
    __import__(f"{__name__}.{_submodule}")
kernel = _kernel_decorator  # noqa: F811
del _submodule
