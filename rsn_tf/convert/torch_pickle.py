"""Read and write PyTorch ``torch.save`` files with numpy only (no torch import).

mmpose publishes checkpoints in both of torch's formats:

* the **zip** format (torch >= 1.6 default): a zip holding ``<root>/data.pkl`` and one raw file per
  storage, ``<root>/data/<key>``;
* the **legacy** format, which mmpose's ``publish_model.py`` still writes
  (``_use_new_zipfile_serialization=False``): a stream of pickles (magic number, protocol, sys info, the
  object, the storage keys) followed by each storage as an int64 element count and raw bytes.

In both, tensors are pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
with storages given as persistent ids. We resolve those to numpy arrays. Any other global (mmengine
objects in ``meta``, numpy scalars...) becomes an inert :class:`Opaque` placeholder: nothing from the
file is ever imported or executed, as with ``torch.load(weights_only=True)``.

The writer exists so tests (and users going back to PyTorch) can make real ``.pth`` files without torch.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import sys
import zipfile

import numpy as np

# torch storage class name -> numpy dtype (bfloat16 is widened to float32 on read).
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_DTYPE_STORAGES = {np.dtype(v): k for k, v in _STORAGE_DTYPES.items() if v != "bfloat16"}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class TorchFormatError(ValueError):
    """The file is not a readable ``torch.save`` file."""


class Opaque:
    """Stand-in for a pickled object of a class we do not import (kept inert, state recorded)."""

    _qualname = "?"

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)  # NEWOBJ (dict/list subclasses) builds without calling __init__
        self.args, self.state, self.items = args, None, {}
        return self

    def __init__(self, *args, **kwargs):
        self.args, self.state, self.items = args, None, {}

    def __setstate__(self, state):
        self.state = state

    # dict/list subclasses are rebuilt with SETITEMS/APPENDS
    def __setitem__(self, key, value):
        self.items[key] = value

    def append(self, value):
        self.items[len(self.items)] = value

    def extend(self, values):
        for v in values:
            self.append(v)

    def __call__(self, *args, **kwargs):  # e.g. getattr(obj, name)(...) reductions
        return Opaque()

    def __repr__(self):
        return f"<unloaded {self._qualname}>"


class _StorageRef:
    """A storage's dtype and where its bytes are; turned into an array on first use."""

    def __init__(self, storage_type: str, key: str, numel: int):
        if storage_type not in _STORAGE_DTYPES:
            raise TorchFormatError(f"unsupported tensor storage type {storage_type!r}")
        self.storage_type, self.key, self.numel = storage_type, key, int(numel)
        self.array: np.ndarray | None = None


def _to_array(raw: bytes, storage_type: str) -> np.ndarray:
    dtype = _STORAGE_DTYPES[storage_type]
    if dtype == "bfloat16":  # numpy has no bfloat16: the top 16 bits of a float32
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"))


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """``torch._utils._rebuild_tensor_v2``: a strided view of the storage, copied to a fresh array."""
    if storage.array is None:
        raise TorchFormatError(f"storage {storage.key} was not loaded")
    base = storage.array[storage_offset:]
    if len(size) == 0:  # a scalar tensor (e.g. BN num_batches_tracked)
        return np.array(base[0])
    if min(size) == 0:
        return np.zeros(size, base.dtype)
    view = np.lib.stride_tricks.as_strided(base, shape=tuple(size), strides=tuple(s * base.itemsize for s in stride))
    return np.array(view).astype(base.dtype.newbyteorder("="), copy=False)


def _rebuild_parameter(data, *unused):
    return data


_TORCH_FUNCS = {
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
_SAFE_BUILTINS = {"set", "frozenset", "list", "dict", "tuple", "slice", "range", "complex", "bytearray"}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, load_storage, rebuild_tensor=_rebuild_tensor):
        super().__init__(file, encoding="latin1")  # latin1: py2-era pickles with byte strings
        self._load_storage, self._rebuild_tensor = load_storage, rebuild_tensor

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return self._rebuild_tensor
        if (module, name) in _TORCH_FUNCS:
            return _TORCH_FUNCS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return name  # storage classes only appear inside persistent ids; keep the name
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return getattr(__import__("builtins"), name)
        return type(name, (Opaque,), {"_qualname": f"{module}.{name}"})

    def persistent_load(self, pid):
        kind = pid[0].decode() if isinstance(pid[0], bytes) else pid[0]
        if kind != "storage":
            raise TorchFormatError(f"unsupported persistent id {kind!r}")
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], pid[4]
        if not isinstance(storage_type, str):  # e.g. UntypedStorage (raw bytes)
            storage_type = "ByteStorage"
        view = pid[5] if len(pid) > 5 else None
        if view is not None:
            raise TorchFormatError("storage views (pre-1.0 torch files) are not supported")
        return self._load_storage(storage_type, key, numel)


class _PlainUnpickler(pickle.Unpickler):
    """For the legacy format's header pickles: plain data only, no globals at all."""

    def find_class(self, module, name):
        raise TorchFormatError(f"unexpected {module}.{name} in a torch file header")


def load(path: str):
    """The object stored by ``torch.save`` at ``path``; tensors become numpy arrays (see module doc)."""
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    with open(path, "rb") as f:
        return _load_legacy(f, path)


def _load_zip(path):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl")]
        if len(pkl) != 1:
            raise TorchFormatError(f"{path}: a zip file but not a torch checkpoint (no single data.pkl)")
        root = pkl[0][: -len("data.pkl")]
        refs: dict[str, _StorageRef] = {}

        def load_storage(storage_type, key, numel):
            if key not in refs:
                ref = refs[key] = _StorageRef(storage_type, key, numel)
                ref.array = _to_array(zf.read(f"{root}data/{key}"), storage_type)
            return refs[key]

        return _Unpickler(io.BytesIO(zf.read(pkl[0])), load_storage).load()


def _load_legacy(f, path):
    try:
        magic = _PlainUnpickler(f).load()
    except Exception:
        raise TorchFormatError(f"{path}: not a PyTorch checkpoint "
                               "(neither a torch zip nor a legacy torch.save file)") from None
    if magic != _LEGACY_MAGIC:
        raise TorchFormatError(f"{path}: not a PyTorch checkpoint (bad magic number)")
    if _PlainUnpickler(f).load() != _LEGACY_PROTOCOL:
        raise TorchFormatError(f"{path}: unsupported legacy torch protocol version")
    _PlainUnpickler(f).load()  # sys info (endianness, type sizes)
    refs: dict[str, _StorageRef] = {}

    def load_storage(storage_type, key, numel):
        if key not in refs:
            refs[key] = _StorageRef(storage_type, key, numel)
        return refs[key]

    # Tensors are rebuilt during unpickling but their bytes come after the pickle; rebuild lazily.
    pending = []

    def rebuild(storage, *args):
        holder = _Deferred(storage, args)
        pending.append(holder)
        return holder

    try:
        obj = _Unpickler(f, load_storage, rebuild).load()
        keys = _PlainUnpickler(f).load()
    except EOFError:
        raise TorchFormatError(f"{path}: truncated (the file ends inside its pickled object)") from None
    for key in keys:
        ref = refs[str(key)]
        (numel,) = struct.unpack("<q", f.read(8))
        itemsize = 2 if ref.storage_type == "BFloat16Storage" else np.dtype(_STORAGE_DTYPES[ref.storage_type]).itemsize
        raw = f.read(numel * itemsize)
        if len(raw) != numel * itemsize:
            raise TorchFormatError(f"{path}: truncated (storage {key})")
        ref.array = _to_array(raw, ref.storage_type)
    for holder in pending:
        holder.value = _rebuild_tensor(holder.storage, *holder.args)
    return _resolve(obj)


class _Deferred:
    def __init__(self, storage, args):
        self.storage, self.args, self.value = storage, args, None


def _resolve(obj):
    """Replace :class:`_Deferred` tensors (legacy format) by their arrays, through dicts/lists."""
    if isinstance(obj, _Deferred):
        return obj.value
    if isinstance(obj, dict):
        for k, v in obj.items():
            obj[k] = _resolve(v)
        return obj
    if isinstance(obj, list):
        return [_resolve(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v) for v in obj)
    return obj


# ----------------------------------------------------------------------------------------- writing
class _Global:
    """A ``module.name`` reference written as a pickle GLOBAL without importing it."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle's save_reduce only checks callable(func)
        raise TypeError("placeholder")


class _Tensor:
    def __init__(self, key: str, array: np.ndarray):
        self.key, self.array = key, np.array(array, order="C")  # (ascontiguousarray makes 0-d 1-d)


class _Storage:  # the tensor's storage: written as a persistent id, its bytes stored separately
    def __init__(self, tensor: _Tensor):
        self.tensor = tensor


class _Pickler(pickle._Pickler):  # the pure-python pickler lets us emit torch GLOBALs directly
    dispatch = dict(pickle._Pickler.dispatch)

    def save_torch_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[_Global] = save_torch_global

    def reducer_override(self, obj):
        if isinstance(obj, _Tensor):
            a = obj.array
            stride = tuple(s // a.itemsize for s in a.strides)
            return (_Global("torch._utils", "_rebuild_tensor_v2"),
                    (_Storage(obj), 0, tuple(a.shape), stride, False, collections.OrderedDict()))
        return NotImplemented

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            a = obj.tensor.array
            storage_type = _DTYPE_STORAGES.get(a.dtype.newbyteorder("="))
            if storage_type is None:
                raise TypeError(f"cannot write dtype {a.dtype} to a torch file")
            pid = ("storage", _Global("torch", storage_type), obj.tensor.key, "cpu", a.size)
            return pid + (None,) if self.legacy else pid  # legacy ids carry a (here empty) view
        return None


def save(obj, path: str, legacy: bool = False) -> None:
    """``torch.save(obj, path)`` for nested dicts/lists of numpy arrays (arrays become CPU tensors).

    ``legacy=True`` writes the pre-1.6 stream format (as mmpose's published checkpoints use).
    """
    tensors: list[_Tensor] = []

    def wrap(o):
        if isinstance(o, np.ndarray) or isinstance(o, np.generic):
            t = _Tensor(str(len(tensors)), np.asarray(o))
            tensors.append(t)
            return t
        if isinstance(o, collections.OrderedDict):
            return collections.OrderedDict((k, wrap(v)) for k, v in o.items())
        if isinstance(o, dict):
            return {k: wrap(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return type(o)(wrap(v) for v in o)
        return o

    wrapped = wrap(obj)
    buf = io.BytesIO()
    pickler = _Pickler(buf, protocol=2)
    pickler.legacy = legacy
    pickler.dump(wrapped)
    if sys.byteorder != "little":
        raise NotImplementedError("writing torch files on big-endian hosts")
    if legacy:
        with open(path, "wb") as f:
            for header in (_LEGACY_MAGIC, _LEGACY_PROTOCOL,
                           {"protocol_version": _LEGACY_PROTOCOL, "little_endian": True,
                            "type_sizes": {"short": 2, "int": 4, "long": 4}}):
                pickle.dump(header, f, protocol=2)
            f.write(buf.getvalue())
            pickle.dump([t.key for t in tensors], f, protocol=2)
            for t in tensors:
                f.write(struct.pack("<q", t.array.size))
                f.write(t.array.tobytes())
        return
    root = os.path.splitext(os.path.basename(path))[0] or "archive"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{root}/data.pkl", buf.getvalue())
        zf.writestr(f"{root}/byteorder", "little")
        for t in tensors:
            zf.writestr(f"{root}/data/{t.key}", t.array.tobytes())
        zf.writestr(f"{root}/version", "3\n")
