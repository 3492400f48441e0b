"""Command lines derived from the library's dataclasses: an option per field, with the field's
type, default and help (its comment in the class), so that no entry point restates a default.

    ap = argparse.ArgumentParser(description=__doc__)
    add_fields(ap, BuildConfig, skip={"options"}, choices={"source": SOURCES})
    args = ap.parse_args()
    cfg = BuildConfig(**field_values(args, BuildConfig, skip={"options"}))

`--snake-name` per field; a field without a default is required; bool fields are flags (`--x`,
or `--no-x` when the default is true); tuple/list fields take a comma list; a nested dataclass
field (BuildConfig.page: PageSpec) contributes its own fields as options of their own (--layout,
--dpi, ...) and is put back together by field_values. The help of each option is the comment on
its field's line, or the comment lines just above it.

Written here rather than with transformers.HfArgumentParser: that one rewrites the dataclass's
field types in place, cannot leave fields out, and has no tuple, dict or nested-dataclass fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any

_FIELD = re.compile(r"^    (\w+)\s*:")


def field_comments(cls: type) -> dict[str, str]:
    """{field: its comment} from the class's source (empty when the source is unavailable)."""
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = src.splitlines()
    out: dict[str, str] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for i, line in enumerate(lines, start=1):
        m = _FIELD.match(line)
        if not m or m.group(1) not in names:
            continue
        text = comments.get(i) if not line.lstrip().startswith("#") else None
        if not text:  # the comment lines right above
            above, j = [], i - 1
            while j >= 1 and lines[j - 1].lstrip().startswith("#"):
                above.insert(0, comments.get(j, ""))
                j -= 1
            text = " ".join(above)
        out[m.group(1)] = text
    return out


def _kind(tp: Any) -> tuple[str, Any]:
    """(kind, item type): kind in bool, scalar, sequence, dataclass, other; Optional stripped."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        if len(args) != 1:
            return "other", None
        tp = args[0]
    if tp is bool:
        return "bool", bool
    if tp in (int, float, str):
        return "scalar", tp
    if typing.get_origin(tp) in (tuple, list):
        items = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return "sequence", items[0] if items else str
    if dataclasses.is_dataclass(tp):
        return "dataclass", tp
    return "other", None


def _fields(cls: type) -> list[tuple[dataclasses.Field, str, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, *_kind(hints[f.name])) for f in dataclasses.fields(cls) if f.init]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def add_fields(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
               skip: Collection[str] = (), choices: Mapping[str, Collection] | None = None) -> None:  # fmt: skip
    """An option for each field of dataclass `cls` but those in `skip`; `choices` restricts a
    field's values (each item of a list field)."""
    choices = choices or {}
    helps = field_comments(cls)
    for f, kind, item in _fields(cls):
        if f.name in skip:
            continue
        if kind == "dataclass":  # its fields as a group of options (a group holds no group)
            group = parser.add_argument_group(f"{f.name} ({item.__name__})") if isinstance(parser, argparse.ArgumentParser) else parser  # fmt: skip
            add_fields(group, item, skip, choices)
            continue
        if kind == "other":
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line form; pass it in skip")
        default = _default(f)
        opt = "--" + f.name.replace("_", "-")
        text = helps.get(f.name, "")
        allowed = choices.get(f.name)
        if kind == "bool":
            if default is True:
                parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                                    help=f"{text} (default: on)")  # fmt: skip
            else:
                parser.add_argument(opt, dest=f.name, action="store_true", help=text)
            continue
        kw: dict[str, Any] = {"dest": f.name, "help": text}
        if default is dataclasses.MISSING:
            kw["required"] = True
        else:
            kw["default"] = default
            shown = ",".join(map(str, default)) if kind == "sequence" and default else default
            kw["help"] = f"{text} (default: {shown})"
        if kind == "sequence":
            kw["type"] = _sequence(item, allowed, f.name)
            kw["metavar"] = "A,B,..."
            if allowed:
                kw["help"] += f"; from {','.join(map(str, allowed))}"
        else:
            kw["type"] = item
            if allowed:
                kw["choices"] = (
                    sorted(allowed) if not isinstance(allowed, (list, tuple)) else allowed
                )
        parser.add_argument(opt, **kw)


def _sequence(item: type, allowed: Collection | None, name: str):
    def parse(text: str) -> tuple:
        values = tuple(item(x.strip()) for x in text.split(",") if x.strip())
        bad = [v for v in values if allowed is not None and v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(
                f"unknown {name} {bad}; choose from {','.join(map(str, allowed))}"
            )
        return values

    parse.__name__ = f"comma list of {item.__name__}"
    return parse


def field_values(args: argparse.Namespace, cls: type, skip: Collection[str] = ()) -> dict[str, Any]:
    """The keyword arguments of `cls` from parsed `args` (nested dataclasses rebuilt)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f, kind, item in _fields(cls):
        if f.name in skip:
            continue
        if kind == "dataclass":
            out[f.name] = item(**field_values(args, item, skip))
        elif hasattr(args, f.name):
            value = getattr(args, f.name)
            as_list = any(
                typing.get_origin(t) is list
                for t in (hints[f.name], *typing.get_args(hints[f.name]))
            )
            out[f.name] = list(value) if as_list and value is not None else value
    return out


def describe(cls: type, prefix: str = "") -> str:
    """Every field of dataclass `cls` (and its nested dataclasses) as `prefix.name (type, default):
    help` lines, for a --help epilog."""
    helps = field_comments(cls)
    hints = typing.get_type_hints(cls)
    lines = []
    for f, kind, item in _fields(cls):
        name = f"{prefix}{f.name}"
        if kind == "dataclass":
            lines.append(describe(item, prefix=f"{name}."))
            continue
        default = _default(f)
        shown = "required" if default is dataclasses.MISSING else f"default {default!r}"
        tp = hints[f.name]
        tp = tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")
        text = helps.get(f.name, "")
        lines.append(f"  {name} ({tp}, {shown})" + (f": {text}" if text else ""))
    return "\n".join(lines)


def source_dir_pairs(specs: list[str], must_exist: bool = False) -> list[tuple[str, str]]:
    """`--real SOURCE=DIR` options -> [(source, dir)]; a ValueError naming the bad one (with
    `must_exist`, also a folder that is not there)."""
    out = []
    for spec in specs:
        source, sep, root = spec.partition("=")
        source, root = source.strip(), root.strip()
        if not sep or not source or not root:
            raise ValueError(
                f"--real {spec!r}: expected SOURCE=DIR (e.g. ludb=../shared/data/real/ludb)"
            )
        if must_exist:
            from pathlib import Path

            if not Path(root).is_dir():
                raise ValueError(f"--real {spec!r}: {root} is not a folder")
        out.append((source, root))
    return out
