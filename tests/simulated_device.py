"""A simulated accelerator on the CPU: catch device mistakes without a GPU.

On a CUDA or MPS machine the course trains its models on ``config.device()``; a notebook that then feeds
them a CPU tensor, or hands a device tensor to matplotlib or NumPy, stops with an error there, and only
there. CI has no GPU, so this module lets the CPU play the part of a second device.

How it works
------------
A tensor "lives on the simulated device" when its storage carries a tag (a Python attribute on the
storage object: PyTorch keeps one Python object per storage, so every view, ``.data`` swap and
``nn.Parameter`` that shares the storage shares the tag, and the tag dies with the storage). The data
stays on the CPU; only the bookkeeping is simulated. Two PyTorch modes keep the books:

* a ``TorchFunctionMode`` handles the Python API where a device is named or exposed:
  ``config.device()`` returns the simulated device (``cuda`` by default); ``.to(device)``, ``.cuda()``,
  ``Module.to(device)``, ``.type_as(device_tensor)``, ``.new_tensor(...)``, ``torch.load(map_location=device)``
  and factory functions called with ``device=`` make tagged copies
  (``torch.randn(..., device=device, generator=cpu_generator)`` is refused, as on CUDA); ``.cpu()``,
  ``.to('cpu')`` and ``device='cpu'`` make untagged copies; ``.device``, ``.is_cuda``, ``.is_mps`` and
  ``.is_cpu`` answer as for a real device tensor; ``.numpy()`` and ``np.asarray`` refuse a tagged tensor
  with CUDA's own message ("can't convert cuda:0 device type tensor to numpy").
* a ``TorchDispatchMode`` sees every ATen operation, the backward pass and optimizers included. Outputs
  of an operation with a tagged input are tagged. An operation that mixes tagged tensors with untagged
  ones raises ``RuntimeError: Expected all tensors to be on the same device`` like real PyTorch, with the
  same exceptions: 0-dim CPU tensors (scalars), ``copy_`` across devices, and CPU index tensors.
  A CPU ``torch.Generator`` used with tagged tensors is refused too.

With ``forbid_float64`` (the default) the device also has Apple MPS's limits: a float64 tensor on it
raises MPS's "Cannot convert a MPS Tensor to float64 dtype", and so does converting a device tensor to
float64 on its way to the CPU in one step (``x.to('cpu', torch.float64)``): move it first, then convert.
So code that passes here should run on CUDA and on MPS alike.

A file written by ``torch.save`` from tagged tensors is remembered; loading it without ``map_location``
raises as ``torch.load`` of a GPU checkpoint does on a machine without that GPU.

What it cannot see: speed, memory, numerical differences between devices, ops MPS lacks (they fall
back to the CPU or fail on a Mac), code that reads ``torch.cuda.is_available()`` (still False, so cells
tagged ``gpu`` stay skipped), code that calls into ``torch.cuda`` itself (it would fail here), and cuDNN:
the simulated GPU has none (``torch.backends.cudnn.is_acceptable`` says no while it runs), so recurrent
layers keep their CPU code path. Python-level ``repr`` of a tagged tensor does not print its device.

Use::

    with SimulatedDevice():            # or sim = SimulatedDevice(); sim.start(); ...; sim.stop()
        model = Net().to(config.device())
        model(torch.zeros(1, 4))       # RuntimeError: Expected all tensors to be on the same device ...
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

_TAG = "_simulated_device"
_INDEX_OPS = {
    torch.ops.aten.index.Tensor,
    torch.ops.aten.index_put.default,
    torch.ops.aten.index_put_.default,
    torch.ops.aten._index_put_impl_.default,
}
_CROSS_DEVICE_OPS = {torch.ops.aten.copy_.default, torch.ops.aten._to_copy.default, torch.ops.aten.copy.default}
MPS_FLOAT64 = (
    "Cannot convert a MPS Tensor to float64 dtype as the MPS framework doesn't support float64. "
    "Please use float32 instead. [simulated device: keep float64 work on the CPU]"
)


def is_on_device(tensor: Any) -> bool:
    """Whether ``tensor`` lives on the simulated device."""
    if not isinstance(tensor, torch.Tensor):
        return False
    with torch._C.DisableTorchFunction():
        try:
            return bool(getattr(tensor.untyped_storage(), _TAG, False))
        except (RuntimeError, NotImplementedError):  # tensors without a storage (sparse, nested)
            return False


def _set_tag(tensor: torch.Tensor, value: bool) -> None:
    with torch._C.DisableTorchFunction():
        storage = tensor.untyped_storage()
        if value:
            setattr(storage, _TAG, True)
        elif hasattr(storage, _TAG):
            delattr(storage, _TAG)


class _Books:
    """Shared state of the two modes."""

    def __init__(self, kind: str, forbid_float64: bool) -> None:
        self.kind = kind
        self.device = torch.device(kind, 0)  # how a tagged tensor reports its device, like real cuda:0 / mps:0
        self.forbid_float64 = forbid_float64
        self.quiet = 0  # > 0 while a handler copies across devices itself
        self.device_files: set[str] = set()
        self.ops_seen = 0
        self.device_ops = 0

    def is_target(self, device: Any) -> bool:
        if device is None or isinstance(device, torch.Tensor):
            return False
        if isinstance(device, int):
            return True  # an integer is a CUDA ordinal
        return torch.device(device).type == self.kind

    def tag(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.forbid_float64 and tensor.dtype in (torch.float64, torch.complex128):
            raise TypeError(MPS_FLOAT64)
        _set_tag(tensor, True)
        return tensor

    def tag_all(self, out: Any) -> Any:
        for leaf in pytree.tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self.tag(leaf)
        return out

    def mismatch(self, what: str) -> RuntimeError:
        return RuntimeError(
            f"Expected all tensors to be on the same device, but found at least two devices, {self.device} and cpu! "
            f"(simulated device; in {what}). Move the CPU tensor to the model's device with .to(device), or bring "
            "the device tensor back with .cpu()."
        )

    def generator_error(self) -> RuntimeError:
        return RuntimeError(
            f"Expected a '{self.kind}' device type for generator but found 'cpu' (simulated device). Draw the random "
            "numbers on the CPU with the generator, then move them: torch.randn(shape, generator=g).to(device)."
        )


def _to_target(books: _Books, args: tuple, kwargs: dict) -> tuple[Any, torch.dtype | None, bool]:
    """The device named by ``Tensor.to``'s arguments (None when none is), its dtype, and whether it is ours."""
    device, dtype = kwargs.get("device"), kwargs.get("dtype")
    for arg in args[1:]:
        if isinstance(arg, torch.Tensor):
            return arg.device, arg.dtype, is_on_device(arg)
        if isinstance(arg, torch.dtype):
            dtype = arg
        elif isinstance(arg, (str, torch.device, int)) and not isinstance(arg, bool):  # Module.to passes non_blocking
            device = arg
    return device, dtype, device is not None and books.is_target(device)


def _cpu_copy(books: _Books, tensor: torch.Tensor, dtype: torch.dtype | None, **extra: Any) -> torch.Tensor:
    if books.forbid_float64 and dtype in (torch.float64, torch.complex128) and tensor.dtype != dtype:
        raise TypeError(MPS_FLOAT64 + " (converting on the way to the CPU: call .cpu() first, then .double())")
    books.quiet += 1
    try:
        out = tensor.to("cpu", dtype, copy=True, **extra) if dtype is not None else tensor.to("cpu", copy=True, **extra)
    finally:
        books.quiet -= 1
    _set_tag(out, False)
    return out


def _device_copy(books: _Books, tensor: torch.Tensor, dtype: torch.dtype | None, **extra: Any) -> torch.Tensor:
    if is_on_device(tensor):
        return tensor.to(dtype, **extra) if dtype is not None else tensor
    books.quiet += 1
    try:
        out = tensor.to("cpu", dtype, copy=True, **extra) if dtype is not None else tensor.to("cpu", copy=True, **extra)
    finally:
        books.quiet -= 1
    return books.tag(out)


def _numpy_error(books: _Books) -> TypeError:
    return TypeError(
        f"can't convert {books.device} device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host "
        "memory first. (simulated device)"
    )


class _FunctionMode(TorchFunctionMode):
    def __init__(self, books: _Books) -> None:
        super().__init__()
        self.books = books
        kind = books.kind
        # One handler per API function that names or exposes a device; everything else passes straight through.
        self.handlers = {
            torch.Tensor.device.__get__: lambda f, a, k: books.device if is_on_device(a[0]) else f(*a),
            torch.Tensor.is_cuda.__get__: lambda f, a, k: (kind == "cuda") if is_on_device(a[0]) else f(*a),
            torch.Tensor.is_mps.__get__: lambda f, a, k: (kind == "mps") if is_on_device(a[0]) else f(*a),
            torch.Tensor.is_cpu.__get__: lambda f, a, k: False if is_on_device(a[0]) else f(*a),
            torch.Tensor.get_device: lambda f, a, k: 0 if is_on_device(a[0]) else f(*a, **k),
            torch.Tensor.numpy: self._numpy,
            torch.Tensor.__array__: self._numpy,
            torch.Tensor.to: self._to,
            torch.Tensor.cpu: lambda f, a, k: _cpu_copy(books, a[0], None) if is_on_device(a[0]) else f(*a, **k),
            torch.Tensor.cuda: self._cuda,
            torch.Tensor.type_as: self._type_as,
            torch.Tensor.new_tensor: self._new_tensor,
        }

    def _numpy(self, func, args, kwargs):
        if is_on_device(args[0]):
            raise _numpy_error(self.books)
        return func(*args, **kwargs)

    def _cuda(self, func, args, kwargs):
        if self.books.kind == "cuda":
            return _device_copy(self.books, args[0], None)
        return func(*args, **kwargs)

    def _new_tensor(self, func, args, kwargs):
        if kwargs.get("device") is not None:
            return self._factory(func, args, dict(kwargs), self.books.is_target(kwargs["device"]))
        out = func(*args, **kwargs)  # always a copy of the data, on self's device
        return self.books.tag(out) if is_on_device(args[0]) else out

    def _type_as(self, func, args, kwargs):
        tensor, other = args[0], args[1]
        if is_on_device(other):
            return _device_copy(self.books, tensor, other.dtype)
        if is_on_device(tensor):
            return _cpu_copy(self.books, tensor, other.dtype)
        return func(*args, **kwargs)

    def _to(self, func, args, kwargs):
        tensor = args[0]
        device, dtype, ours = _to_target(self.books, args, kwargs)
        extra = {k: v for k, v in kwargs.items() if k in ("non_blocking", "memory_format")}
        if ours:
            return _device_copy(self.books, tensor, dtype, **extra)
        if device is not None and is_on_device(tensor):
            return _cpu_copy(self.books, tensor, dtype, **extra)
        return func(*args, **kwargs)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = self.handlers.get(func)
        if handler is not None:
            return handler(func, args, kwargs)
        if kwargs.get("device") is not None:
            return self._factory(func, args, dict(kwargs), self.books.is_target(kwargs["device"]))
        return func(*args, **kwargs)

    def _factory(self, func, args, kwargs, to_device: bool):
        """torch.zeros, torch.randn, torch.full, torch.tensor, torch.as_tensor, zeros_like, ... given a device."""
        books = self.books
        inputs = [x for x in pytree.tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
        if not to_device and not any(is_on_device(x) for x in inputs):
            return func(*args, **kwargs)  # CPU in, CPU out: nothing to simulate
        generator = kwargs.get("generator")
        if to_device and generator is not None and generator.device.type != books.kind:
            raise books.generator_error()
        kwargs["device"] = "cpu"
        books.quiet += 1
        try:
            out = func(*args, **kwargs)
            # torch.as_tensor(x, device=...) may hand back its input; a copy to another device is a new tensor.
            shared = {x.untyped_storage().data_ptr() for x in inputs if is_on_device(x) != to_device}
            leaves, spec = pytree.tree_flatten(out)
            for i, leaf in enumerate(leaves):
                if isinstance(leaf, torch.Tensor):
                    if leaf.untyped_storage().data_ptr() in shared:
                        leaf = leaf.clone()
                    if to_device:
                        books.tag(leaf)
                    else:
                        _set_tag(leaf, False)
                    leaves[i] = leaf
        finally:
            books.quiet -= 1
        return pytree.tree_unflatten(leaves, spec)


class _DispatchMode(TorchDispatchMode):
    def __init__(self, books: _Books) -> None:
        super().__init__()
        self.books = books

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        books = self.books
        if books.quiet:
            return func(*args, **kwargs)
        books.ops_seen += 1
        with torch._C.DisableTorchFunction():
            leaves = pytree.arg_tree_leaves(*args, **kwargs)
            tensors = [x for x in leaves if isinstance(x, torch.Tensor)]
            on = [is_on_device(t) for t in tensors]
            if any(on):
                books.device_ops += 1
                self._check(func, args, tensors, on)
                if any(isinstance(x, torch.Generator) and x.device.type != books.kind for x in leaves):
                    raise books.generator_error()
        out = func(*args, **kwargs)
        if any(on):
            with torch._C.DisableTorchFunction():
                books.tag_all(out)
        return out

    def _check(self, func, args, tensors, on) -> None:
        if func in _CROSS_DEVICE_OPS:
            return
        if func in _INDEX_OPS:
            # CUDA accepts CPU index tensors for a device tensor; the other way round is an error.
            self_on = is_on_device(args[0])
            indices = [i for i in pytree.tree_leaves(args[1]) if isinstance(i, torch.Tensor)]
            if not self_on and any(is_on_device(i) for i in indices):
                raise self.books.mismatch(f"{func}: indices on the device, indexed tensor on the CPU")
            others = [args[0]] + [a for a in args[2:] if isinstance(a, torch.Tensor)]
            if any(is_on_device(o) != self_on and o.dim() > 0 for o in others):
                raise self.books.mismatch(str(func))
            return
        for tensor, tagged in zip(tensors, on, strict=True):
            if not tagged and tensor.dim() > 0:  # 0-dim CPU tensors are scalars, accepted next to device tensors
                raise self.books.mismatch(f"{func} with a CPU tensor of shape {tuple(tensor.shape)}")


class SimulatedDevice:
    """Context manager (or ``start()``/``stop()``) that makes ``config.device()`` a simulated accelerator.

    ``kind`` is the device type tagged tensors report (``"cuda"`` or ``"mps"``); ``forbid_float64`` adds
    MPS's float64 limit (on by default, whatever ``kind``, so that passing code runs on both).
    """

    def __init__(self, kind: str = "cuda", forbid_float64: bool = True) -> None:
        if kind not in ("cuda", "mps"):
            raise ValueError(f"kind must be 'cuda' or 'mps', got {kind!r}")
        self.books = _Books(kind, forbid_float64)
        self._modes: list = []
        self._saved: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        """The device ``config.device()`` returns while the simulation runs."""
        return torch.device(self.books.kind)

    @property
    def ops_seen(self) -> int:
        """How many ATen operations ran while the simulation was on."""
        return self.books.ops_seen

    @property
    def device_ops(self) -> int:
        """How many of them had an input on the simulated device (a test can assert the device was used)."""
        return self.books.device_ops

    def start(self) -> SimulatedDevice:
        """Switch the simulation on (it stays on, in this thread, until :meth:`stop`)."""
        from course_utils import config

        if self._modes:
            raise RuntimeError("the simulated device is already running")
        books = self.books
        self._saved = {
            "device": config.device,
            "save": torch.save,
            "load": torch.load,
            "cudnn": torch.backends.cudnn.is_acceptable,
        }
        config.device = lambda: torch.device(books.kind)
        torch.save = self._save
        torch.load = self._load
        # The tensors are really on the CPU: recurrent layers must not take the cuDNN path meant for `is_cuda`
        # weights. The simulated GPU is one without cuDNN.
        torch.backends.cudnn.is_acceptable = lambda tensor: False
        self._modes = [_DispatchMode(books), _FunctionMode(books)]
        for mode in self._modes:
            mode.__enter__()
        return self

    def stop(self) -> None:
        """Switch the simulation off and restore ``config.device``, ``torch.save`` and ``torch.load``."""
        from course_utils import config

        for mode in reversed(self._modes):
            mode.__exit__(None, None, None)
        self._modes = []
        if self._saved:
            config.device = self._saved["device"]
            torch.save = self._saved["save"]
            torch.load = self._saved["load"]
            torch.backends.cudnn.is_acceptable = self._saved["cudnn"]
            self._saved = {}

    def __enter__(self) -> SimulatedDevice:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """A tagged copy of ``tensor`` (the test's way to put data on the simulated device)."""
        return _device_copy(self.books, tensor, None)

    # torch.save / torch.load: a file saved from device tensors needs map_location where there is no device

    def _save(self, obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        on = any(is_on_device(x) for x in pytree.tree_leaves(obj) if isinstance(x, torch.Tensor))
        self._saved["save"](obj, f, *args, **kwargs)
        if isinstance(f, (str, os.PathLike)):
            key = str(Path(f).resolve())
            (self.books.device_files.add if on else self.books.device_files.discard)(key)

    def _load(self, f: Any, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
        key = str(Path(f).resolve()) if isinstance(f, (str, os.PathLike)) else None
        if map_location is None and key is not None and key in self.books.device_files:
            raise RuntimeError(
                f"Attempting to deserialize object on a {self.books.kind.upper()} device but this machine may not "
                f"have one. If you are running on a CPU-only machine, please use torch.load with "
                f"map_location=torch.device('cpu') to map your storages to the CPU. (simulated device: {f} was "
                "saved from device tensors)"
            )
        if map_location is not None and not callable(map_location) and self.books.is_target(map_location):
            return self.books.tag_all(self._saved["load"](f, *args, map_location="cpu", **kwargs))
        return self._saved["load"](f, map_location, *args, **kwargs)
