"""Read the tensors of a torch checkpoint that also pickles other objects, without running them.

Research checkpoints often pickle their training configuration beside the weights: fairseq's
(ECG-FM's) an omegaconf DictConfig, others an argparse Namespace or numpy scalars. torch's safe
load (weights_only=True) refuses such a file, and a full load would import and call whatever the
file names (arbitrary code). This reader is a third way: torch's own unpickling of tensors and
storages, with an unpickler that resolves only an allow-list of harmless globals (tensor and
parameter rebuilders, dtypes, OrderedDict, plain builtin containers) and replaces every other
global by an inert stand-in (Opaque) that records its arguments and runs nothing. The state dict
comes back intact; the configuration comes back as Opaque objects (unused here).

    obj, replaced = read_torch_file(path)     # replaced: the globals stood in for, e.g.
                                              # ["omegaconf.dictconfig.DictConfig", ...]
"""

from __future__ import annotations

import pickle
import types
from pathlib import Path

import torch

# (module, name) pairs resolved to the real object: what a state dict of tensors needs
_ALLOWED = {
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch.nn.parameter", "Parameter"),
    ("torch", "Tensor"),
    ("torch", "Size"),
    ("torch", "device"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "tuple"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("_codecs", "encode"),  # how protocol-2 pickles carry bytes
}


class Opaque:
    """Stands in for an object the file pickled: holds what the pickle handed it, runs nothing."""

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs, self.state, self.items = args, kwargs, None, []

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):  # dict-like objects are rebuilt item by item
        self.items.append((key, value))

    def append(self, value):  # and list-like ones
        self.items.append(value)

    def extend(self, values):
        self.items.extend(values)

    def __repr__(self) -> str:
        return f"<opaque {self.qualname}>"


def _pickle_module(replaced: set[str]) -> types.ModuleType:
    """A module torch.load can use as its pickle_module: our Unpickler and load."""

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if (module, name) in _ALLOWED:
                return super().find_class(module, name)
            if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
                return getattr(torch, name)
            qualname = f"{module}.{name}"
            replaced.add(qualname)
            return type(name, (Opaque,), {"qualname": qualname})

    mod = types.ModuleType("ecgllm_opaque_pickle")
    mod.Unpickler = Unpickler
    mod.load = lambda f, **kwargs: Unpickler(f, **kwargs).load()
    mod.__dict__.update(
        {k: getattr(pickle, k) for k in ("UnpicklingError", "HIGHEST_PROTOCOL", "PickleError")}
    )
    return mod


def read_torch_file(path: str | Path) -> tuple[object, list[str]]:
    """(the file's object, the globals replaced by Opaque stand-ins); ValueError when torch
    cannot read the file at all."""
    replaced: set[str] = set()
    try:
        obj = torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_pickle_module(replaced)
        )
    except Exception as e:
        raise ValueError(f"{path}: not a torch file that can be read ({e})") from e
    return obj, sorted(replaced)
