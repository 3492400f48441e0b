"""Write-then-rename: a file under its final name is always complete.

Every long job commits its outputs through `replace` (or `write_bytes`/`write_text`) and marks its
progress with `crash_point`, so the kill-anywhere tests can stop it at any of those moments:

    ECGLLM_CRASH_LOG=FILE   append one line per crash point reached (name and process id)
    ECGLLM_CRASH_AT=N       SIGKILL this process at the N-th crash point it reaches (1-based)

Unset (always, outside tests) both cost one dictionary lookup per point.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

_COUNT = 0


def crash_point(what: str | os.PathLike) -> None:
    """A moment at which the job may be killed (tests only; see the module's docstring)."""
    global _COUNT
    log, at = os.environ.get("ECGLLM_CRASH_LOG"), os.environ.get("ECGLLM_CRASH_AT")
    if not (log or at):
        return
    _COUNT += 1
    if log:
        with open(log, "a") as f:
            f.write(f"{_COUNT}\t{os.getpid()}\t{what}\n")
    if at and _COUNT == int(at):
        os.kill(os.getpid(), signal.SIGKILL)


def replace(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """os.replace with a crash point on either side (the temporary name complete, the final
    name not yet; then the final name complete)."""
    crash_point(f"before {Path(dst).name}")
    os.replace(src, dst)
    crash_point(f"after {Path(dst).name}")
    return Path(dst)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    return replace(tmp, path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode())


def remove_stale(folder: str | os.PathLike, *patterns: str) -> int:
    """Delete what a killed run left under temporary names in `folder` (files or folders matching
    `patterns`); the number removed. Only for folders one job writes at a time."""
    import shutil

    n = 0
    for pattern in patterns:
        for p in Path(folder).glob(pattern):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            n += 1
    return n


class Stamp:
    """What the outputs beside it were made from: a JSON file, written whole then renamed, that a
    re-run compares with its own settings to decide whether those outputs may be reused (the one
    "stamp and reuse" mechanism of the builder, the renderer, evaluation and the quickstart)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def read(self) -> Any:
        """The stamp's content; None when there is none or it is not JSON (it matches nothing)."""
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None

    def matches(self, settings: Any, key: str | None = None) -> bool:
        """Whether the stamp holds `settings`, compared as JSON (a tuple equals a list); with
        `key`, only that entry of a mapping stamp."""
        got = self.read()
        if key is not None:
            got = got.get(key) if isinstance(got, dict) else None
        return got is not None and got == json.loads(json.dumps(settings, default=str))

    def write(self, settings: Any, indent: int | None = None) -> Path:
        return write_text(self.path, json.dumps(settings, default=str, indent=indent))
