"""Write-then-rename: a file under its final name is always complete.

Every long job commits its outputs through `replace` (or `write_bytes`/`write_text`) and marks its
progress with `crash_point`, so the kill-anywhere tests can stop it at any of those moments:

    ECGLLM_CRASH_LOG=FILE   append one line per crash point reached (name and process id)
    ECGLLM_CRASH_AT=N       SIGKILL this process at the N-th crash point it reaches (1-based)

Unset (always, outside tests) both cost one dictionary lookup per point.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

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
