"""Reading a YAML file that must hold a mapping (recipe configs, benchmark files)."""

from __future__ import annotations

from pathlib import Path

import yaml


def read_mapping(path: Path, what: str, error: type[ValueError] = ValueError) -> dict:
    """The mapping in YAML file `path` ({} when empty). Unreadable YAML or another kind of value is
    `error` naming the file; `what` names what the mapping should hold ("sections")."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: expected {what}, got {type(raw).__name__}")
    return raw
