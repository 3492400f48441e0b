"""Property-based fuzzing of every input surface: bad files, configs and images never crash.

    from ecgllm.fuzz import SURFACES, run_surface
    report = run_surface("wfdb_header", n=10_000, workdir="/tmp/fuzz")   # bench/fuzz.py
    report["crashes"]    # 0: every bad input gave the project's own error, or was read

Each surface turns hypothesis-drawn mutations of a valid input (a WFDB record, a Challenge
`.mat`, a PTB-XL or LUDB CSV, a LLaVA/ECG-QA JSON, a benchmark YAML, recipe overrides, page
images) into a call of the public entry point that reads it. An outcome is fine when the input
is read, or when the error is one the project raised on purpose: a `raise` statement inside the
ecgllm package, of a ValueError/OSError kind (ECGReadError, ConfigError, SampleError are), whose
message names the file it read (file surfaces). Anything else is a crash: a third-party
traceback (wfdb, pandas, numpy, PIL, yaml), or an accidental TypeError/KeyError/IndexError of
ours. Crashes are kept (the input and the traceback's last line) so they can be minimised into
tests/data/bad/ as regression cases.

hypothesis is a dev dependency (`pip install -e '.[dev]'`); it is imported when a surface runs.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE = Path(__file__).resolve().parent
# values that break parsers: numbers out of range, non-numbers, separators, encodings
NASTY = ("", "-1", "0", "0.0", "nan", "NaN", "inf", "-inf", "1e309", "99999999999999999999", "abc",
         "16x", "212", "/mV", "(0)", "0/0", "\x00", "ä", "\u202e", "None", "[]", "{}", "'", '"',
         ",", ";", " ", "\t", "#", "1,5", "1.2.3", "0x10", "-0")  # fmt: skip


def _strategies():
    from hypothesis import strategies as st

    token = st.one_of(st.sampled_from(NASTY), st.text(max_size=10), st.integers().map(str),
                      st.floats(allow_nan=True, allow_infinity=True).map(repr))  # fmt: skip
    json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                          st.text(max_size=12), st.sampled_from(NASTY))  # fmt: skip
    json_value = st.recursive(
        json_leaf,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=12,
    )  # fmt: skip
    return st, token, json_value


def _text_mutations(st, token):
    """Edits of a text file's lines: delete, duplicate, replace a whitespace/comma token, cut."""
    op = st.tuples(st.sampled_from(["delete", "duplicate", "token", "cut", "insert"]),
                   st.integers(0, 10_000), st.integers(0, 10_000), token)  # fmt: skip
    return st.lists(op, min_size=1, max_size=4)


def mutate_text(text: str, ops: list[tuple[str, int, int, str]], sep: str | None = None) -> str:
    lines = text.splitlines()
    for kind, i, j, tok in ops:
        if not lines:
            lines = [tok]
            continue
        k = i % len(lines)
        if kind == "delete":
            del lines[k]
        elif kind == "duplicate":
            lines.insert(k, lines[k])
        elif kind == "cut":
            lines[k] = lines[k][: j % (len(lines[k]) + 1)]
        elif kind == "insert":
            lines.insert(k, tok)
        else:
            parts = lines[k].split(sep) if sep else lines[k].split(" ")
            parts[j % len(parts)] = tok
            lines[k] = (sep or " ").join(parts)
    return "\n".join(lines) + "\n"


def mutate_bytes(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    b = bytearray(data)
    for kind, i, v in ops:
        if kind == "truncate":
            b = b[: i % (len(b) + 1)]
        elif kind == "flip" and b:
            b[i % len(b)] = v % 256
        elif kind == "append":
            b += bytes([v % 256]) * (1 + i % 7)
        elif kind == "zero":
            b = bytearray(len(b))
    return bytes(b)


# --- outcome --------------------------------------------------------------------------------------


def classify(exc: BaseException, names: tuple[str, ...] = ()) -> str | None:
    """None when `exc` is an error the project raised on purpose (naming one of `names`, when
    given); otherwise why it is a crash."""
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    ours = last is not None and Path(last.filename).resolve().is_relative_to(PACKAGE)
    if not isinstance(exc, (ValueError, OSError)):
        return f"{type(exc).__name__}"
    if not ours or not (last.line or "").lstrip().startswith("raise"):
        return f"{type(exc).__name__} from {Path(last.filename).name if last else '?'}"
    if names and not any(n in str(exc) for n in names):
        return f"{type(exc).__name__} without the file name"
    return None


@dataclass
class Surface:
    name: str
    what: str
    setup: Callable[[Path], Any]  # once: the valid base input(s) in a work folder
    strategy: Callable[[], Any]  # the hypothesis strategy of one mutation
    check: Callable[
        [Any, Any, Path], str | None
    ]  # reads one mutated input; "skipped" if a batch reader skipped some
    names: tuple[str, ...] = ()  # an error must name one of these (the file read); () = no file


# --- WFDB records ---------------------------------------------------------------------------------


# the formats wfdb can write (8 fails in wfdb's own writer; 61, 160, 310, 311 it cannot write)
WFDB_FORMATS = ("16", "24", "32", "80", "212")


def _wfdb_base(work: Path) -> dict:
    import wfdb

    base = work / "base"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sig = (rng.standard_normal((500, 12)) * 0.2).astype(np.float64)
    leads = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    out = {}
    for fmt in WFDB_FORMATS:
        name = f"r{fmt}"
        wfdb.wrsamp(name, fs=500, units=["mV"] * 12, sig_name=leads, p_signal=sig, fmt=[fmt] * 12,
                    write_dir=str(base), comments=["Age: 60", "Sex: F", "Dx: 426783006"])  # fmt: skip
        out[fmt] = ((base / f"{name}.hea").read_text(), (base / f"{name}.dat").read_bytes())
    return out


def _wfdb_header_strategy():
    st, token, _ = _strategies()
    return st.tuples(st.sampled_from(WFDB_FORMATS), _text_mutations(st, token))


def _wfdb_header_check(base: dict, draw, d: Path) -> None:
    from .signal import read_record

    fmt, ops = draw
    hea, dat = base[fmt]
    (d / f"r{fmt}.hea").write_text(mutate_text(hea, ops), encoding="utf-8")
    (d / f"r{fmt}.dat").write_bytes(dat)
    read_record(d / f"r{fmt}")


def _bytes_strategy():
    from hypothesis import strategies as st

    op = st.tuples(st.sampled_from(["truncate", "flip", "append", "zero"]), st.integers(0, 1 << 20), st.integers(0, 255))  # fmt: skip
    return st.lists(op, min_size=1, max_size=4)


def _wfdb_signal_strategy():
    from hypothesis import strategies as st

    return st.tuples(st.sampled_from(WFDB_FORMATS), _bytes_strategy())


def _wfdb_signal_check(base: dict, draw, d: Path) -> None:
    from .signal import read_record

    fmt, ops = draw
    hea, dat = base[fmt]
    (d / f"r{fmt}.hea").write_text(hea)
    (d / f"r{fmt}.dat").write_bytes(mutate_bytes(dat, ops))
    read_record(d / f"r{fmt}")


# --- database folders (batch readers: bad records are skipped and counted) -----------------------


def _drain(db) -> str | None:
    """Read every record as a batch job does; "skipped" if the reader skipped and counted some
    (a bad row or record: the job goes on), None if all were read."""
    for _ in db.records():
        pass
    return "skipped" if db.rejects.total else None


def _challenge_base(work: Path) -> dict:
    src = PACKAGE.parent / "tests" / "fixtures" / "real" / "cinc2021"
    if not src.is_dir():
        raise FileNotFoundError(
            f"{src}: the Challenge fixture records (a source checkout) are needed"
        )
    return {"hea": (src / "E07501.hea").read_text(), "mat": (src / "E07501.mat").read_bytes()}


def _challenge_strategy():
    st, token, _ = _strategies()
    return st.tuples(_text_mutations(st, token), _bytes_strategy(), st.booleans())


def _challenge_check(base: dict, draw, d: Path) -> str | None:
    from .signal.databases import open_database

    ops, bops, header_only = draw
    (d / "E07501.hea").write_text(mutate_text(base["hea"], ops) if header_only else base["hea"])
    (d / "E07501.mat").write_bytes(base["mat"] if header_only else mutate_bytes(base["mat"], bops))
    return _drain(open_database("challenge", d))


def _ptbxl_base(work: Path) -> dict:
    from .signal.synthetic_db import build_database

    root = work / "ptbxl"
    if not (root / "ptbxl_database.csv").exists():
        build_database(root, n=3, seed=0, progress=False)
    return {"root": root, "csv": (root / "ptbxl_database.csv").read_text()}


def _csv_strategy():
    st, token, _ = _strategies()
    return _text_mutations(st, token)


def _ptbxl_check(base: dict, ops, d: Path) -> str | None:
    from .signal.databases import open_database

    root = d / "ptbxl"
    if not root.exists():
        shutil.copytree(base["root"], root)
    (root / "ptbxl_database.csv").write_text(
        mutate_text(base["csv"], ops, sep=","), encoding="utf-8"
    )
    return _drain(open_database("ptbxl", root))


def _ludb_base(work: Path) -> dict:
    src = PACKAGE.parent / "tests" / "fixtures" / "real" / "ludb"
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: the LUDB fixture records (a source checkout) are needed")
    root = work / "ludb"
    if not root.exists():
        shutil.copytree(
            src, root, ignore=shutil.ignore_patterns("1[0-9][0-9].*", "5*")
        )  # record 1 only
    return {"root": root, "csv": (src / "ludb.csv").read_text()}


def _ludb_check(base: dict, ops, d: Path) -> str | None:
    from .signal.databases import open_database

    root = d / "ludb"
    if not root.exists():
        shutil.copytree(base["root"], root)
    (root / "ludb.csv").write_text(mutate_text(base["csv"], ops, sep=","), encoding="utf-8")
    return _drain(open_database("ludb", root))


def write_mimic(root: Path, samples: int = 1000, bad_row: bool = False) -> Path:
    """A two-study MIMIC-IV-ECG folder: record_list.csv, machine_measurements.csv (intervals,
    axes with 29999 = not measured, report_0..17) and the WFDB files; `bad_row` adds a
    record_list row without ids."""
    import pandas as pd

    from .signal.wfdb_write import write_record16

    rng = np.random.default_rng(0)
    rows, mm = [], []
    for subj, study in ((10000032, 40689238), (10000117, 45090959)):
        rel = f"files/p{str(subj)[:4]}/p{subj}/s{study}/{study}"
        write_record16(root / rel, rng.normal(0, 0.2, (12, samples)).astype(np.float32), 500.0)
        rows.append({"subject_id": subj, "study_id": study, "file_name": study,
                     "ecg_time": "2180-07-23 08:44:00", "path": rel})  # fmt: skip
        m = {"subject_id": subj, "study_id": study, "rr_interval": 800, "p_onset": 40, "p_end": 140,
             "qrs_onset": 200, "qrs_end": 290, "t_end": 600, "p_axis": 60, "qrs_axis": 29999, "t_axis": 50}  # fmt: skip
        m.update(
            {
                f"report_{i}": ["Sinus rhythm", "Left axis deviation."][i] if i < 2 else ""
                for i in range(18)
            }
        )
        mm.append(m)
    if bad_row:
        rows.append(
            {"subject_id": "x", "study_id": None, "file_name": "", "ecg_time": "", "path": ""}
        )
    pd.DataFrame(rows).to_csv(root / "record_list.csv", index=False)
    pd.DataFrame(mm).to_csv(root / "machine_measurements.csv", index=False)
    return root


def _mimic_base(work: Path) -> dict:
    root = work / "mimic"
    if not (root / "record_list.csv").exists():
        write_mimic(root)
    return {
        "root": root,
        **{n: (root / n).read_text() for n in ("record_list.csv", "machine_measurements.csv")},
    }


def _mimic_strategy():
    from hypothesis import strategies as st

    return st.tuples(
        st.sampled_from(["record_list.csv", "machine_measurements.csv"]), _csv_strategy()
    )


def _mimic_check(base: dict, draw, d: Path) -> str | None:
    from .signal.databases import open_database

    name, ops = draw
    root = d / "mimic"
    if not root.exists():
        shutil.copytree(base["root"], root)
    (root / name).write_text(mutate_text(base[name], ops, sep=","), encoding="utf-8")
    return _drain(open_database("mimic", root))


# --- JSON imports, benchmark YAML, recipe overrides -------------------------------------------------

_LLAVA_ROW = {"id": "x", "image": "p.png",
              "conversations": [{"from": "human", "value": "<image>\nWhat rhythm?"}, {"from": "gpt", "value": "Sinus rhythm."}]}  # fmt: skip
_ECGQA_ROW = {"template_id": 1, "question_id": 0, "sample_id": 0, "question_type": "single-verify",
              "attribute_type": "scp_code", "question": "Does this ECG show sinus rhythm?", "answer": ["yes"],
              "ecg_id": [1], "attribute": ["sinus rhythm"]}  # fmt: skip


def _json_base(work: Path) -> dict:
    from PIL import Image

    (work / "json").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), "white").save(work / "json" / "p.png")
    return {"dir": work / "json"}


def _json_strategy(row: dict):
    st, token, json_value = _strategies()
    keys = sorted(row)
    edit = st.tuples(st.sampled_from(keys), st.one_of(json_value, st.just("<delete>")))
    mutated = st.lists(edit, min_size=1, max_size=3).map(
        lambda es: [{k: v for k, v in {**row, **dict(es)}.items() if v != "<delete>"}]
    )
    return st.one_of(json_value, mutated, st.lists(mutated.map(lambda r: r[0]), max_size=3),
                     st.text(max_size=40).map(lambda t: {"<raw>": t}))  # fmt: skip


def _write_json(path: Path, value) -> None:
    if isinstance(value, dict) and set(value) == {"<raw>"}:
        path.write_text(value["<raw>"], encoding="utf-8")  # not JSON at all
    else:
        path.write_text(json.dumps(value), encoding="utf-8")


def _llava_check(base: dict, value, d: Path) -> None:
    from .data.interop import import_llava

    shutil.copy(base["dir"] / "p.png", d / "p.png")
    _write_json(d / "chat.json", value)
    import_llava(d / "chat.json", d / "out")


def _ecgqa_check(base: dict, value, d: Path) -> None:
    from .data.interop import import_ecgqa

    shard = d / "test"
    shard.mkdir(exist_ok=True)
    _write_json(shard / "00000.json", value)
    import_ecgqa([shard / "00000.json"], d / "out")


def _yaml_base(work: Path) -> dict:
    return {"text": (PACKAGE / "benchmarks" / "rhythm.yaml").read_text()}


def _yaml_strategy():
    st, token, _ = _strategies()
    return st.one_of(
        _text_mutations(st, token), st.text(max_size=60).map(lambda t: [("insert", 0, 0, t)])
    )


def _yaml_check(base: dict, ops, d: Path) -> None:
    from .benchmarks import load_benchmark

    (d / "bench.yaml").write_text(mutate_text(base["text"], ops), encoding="utf-8")
    load_benchmark(d / "bench.yaml")


def _config_base(work: Path) -> dict:
    from .train.config import load_config

    cfg = load_config(None, [])
    keys = [
        f"{s}.{k}"
        for s, sec in vars(cfg).items()
        if hasattr(sec, "__dataclass_fields__")
        for k in vars(sec)
    ]
    return {"keys": sorted(keys)}


def _config_strategy():
    from hypothesis import strategies as st

    _, token, json_value = _strategies()
    return st.tuples(st.integers(0, 10_000), st.one_of(token, json_value.map(json.dumps)),
                     st.sampled_from(["key", "key", "file", "file", "unknown", "nodot", "noeq"]))  # fmt: skip


def _config_check(base: dict, draw, d: Path) -> None:
    from .train.config import load_config

    i, value, shape = draw
    key = base["keys"][i % len(base["keys"])]
    if shape == "file":  # the same key and value in a YAML config file
        (d / "c.yaml").write_text(
            f"{key.split('.')[0]}:\n  {key.split('.')[1]}: {value}\n", encoding="utf-8"
        )
        load_config(d / "c.yaml", [])
    else:
        over = {
            "key": f"{key}={value}",
            "unknown": f"{key}x={value}",
            "nodot": f"x={value}",
            "noeq": key,
        }
        load_config(None, [over[shape]])


def _image_base(work: Path) -> dict:
    from .model import build_model

    _, proc = build_model()
    return {"proc": proc}


def _image_strategy():
    from hypothesis import strategies as st

    shape = st.lists(st.integers(0, 40), min_size=0, max_size=4)
    return st.tuples(st.sampled_from(["pil", "array", "object"]), shape,
                     st.sampled_from(["uint8", "float32", "float64", "int64", "bool", "uint16"]),
                     st.sampled_from(["RGB", "L", "RGBA", "P", "1", "I;16", "CMYK", "LA", "F", "I"]),
                     st.sampled_from([0.0, 1.0, np.nan, np.inf, -5.0, 300.0]))  # fmt: skip


def _image_check(base: dict, draw, d: Path) -> None:
    from PIL import Image

    kind, shape, dtype, mode, fill = draw
    if kind == "pil":
        w, h = (shape + [8, 8])[:2]
        img: Any = Image.new(mode, (w, h))
    elif kind == "array":
        img = np.full(shape, fill).astype(dtype) if np.isfinite(fill) or dtype.startswith("float") else np.zeros(shape, dtype)  # fmt: skip
    else:
        img = [None, "page.png", 3, b"\x89PNG", {"a": 1}][len(shape) % 5]
    base["proc"].process_images([img])


SURFACES: dict[str, Surface] = {
    s.name: s
    for s in [
        Surface("wfdb_header", "WFDB header lines (formats 16/24/32/80/212): counts, gains, units, names, encodings",
                _wfdb_base, _wfdb_header_strategy, _wfdb_header_check, tuple(f"r{f}" for f in WFDB_FORMATS)),
        Surface("wfdb_signal", "WFDB signal files (formats 16/24/32/80/212): truncated, flipped, padded, zeroed",
                _wfdb_base, _wfdb_signal_strategy, _wfdb_signal_check, tuple(f"r{f}" for f in WFDB_FORMATS)),
        Surface("challenge", "PhysioNet/CinC Challenge .mat + .hea (#Dx) folders", _challenge_base,
                _challenge_strategy, _challenge_check, ("E07501",)),
        Surface("ptbxl_csv", "ptbxl_database.csv: missing columns, bad literals, NaN, duplicates, unicode",
                _ptbxl_base, _csv_strategy, _ptbxl_check, ("ptbxl_database.csv", "ptbxl")),
        Surface("ludb_csv", "ludb.csv statements table", _ludb_base, _csv_strategy, _ludb_check, ("ludb.csv", "ludb")),
        Surface("mimic_csv", "MIMIC-IV-ECG record_list.csv and machine_measurements.csv", _mimic_base,
                _mimic_strategy, _mimic_check, ("record_list.csv", "machine_measurements.csv", "mimic")),
        Surface("llava_json", "LLaVA/ECGInstruct JSON imports", _json_base, lambda: _json_strategy(_LLAVA_ROW),
                _llava_check, ("chat.json",)),
        Surface("ecgqa_json", "official ECG-QA JSON shards", _json_base, lambda: _json_strategy(_ECGQA_ROW),
                _ecgqa_check, ("00000.json",)),
        Surface("benchmark_yaml", "benchmark YAML files", _yaml_base, _yaml_strategy, _yaml_check, ("bench.yaml",)),
        Surface("config", "recipe configs and section.key=value overrides", _config_base, _config_strategy,
                _config_check),
        Surface("images", "page images given to the processor (PIL modes, arrays, other objects)", _image_base,
                _image_strategy, _image_check),
    ]
}  # fmt: skip


def run_surface(name: str, n: int = 1000, workdir: str | Path | None = None, seed: int = 0,
                keep: int = 20) -> dict:  # fmt: skip
    """Run `n` generated inputs through one surface. Returns counts: inputs, read (no error),
    skipped (a batch reader skipped and counted bad rows/records and went on), rejected (the
    project's own error), crashes, by reason, and up to `keep` crashing inputs."""
    import logging

    import datasets
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    surf = SURFACES[name]
    tmp = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    tmp.mkdir(parents=True, exist_ok=True)
    base = surf.setup(tmp)
    counts: Counter = Counter()
    reasons: Counter = Counter()
    examples: list[dict] = []
    case = tmp / "case"
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the importers save a dataset per input
    quiet = [logging.getLogger(lg) for lg in ("ecgllm", "wfdb")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.CRITICAL)  # the readers log each skipped record; thousands here

    @hseed(seed)
    @settings(max_examples=n, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(surf.strategy())
    def one(draw):
        shutil.rmtree(case, ignore_errors=True)
        case.mkdir()
        counts["inputs"] += 1
        try:
            outcome = surf.check(base, draw, case)
            counts["skipped" if outcome == "skipped" else "read"] += 1
            return
        except Exception as e:  # noqa: BLE001 - classifying every exception is the point
            err = e
        # a file surface's error names the file: the one fuzzed, or one it refers to in the case
        why = classify(err, (*surf.names, str(case)) if surf.names else ())
        if why is None:
            counts["rejected"] += 1
            reasons[f"rejected: {type(err).__name__}"] += 1
            return
        counts["crashes"] += 1
        reasons[why] += 1
        if len(examples) < keep:
            examples.append({"input": repr(draw)[:2000], "error": f"{type(err).__name__}: {err}"[:500],
                             "where": traceback.format_exception(err)[-2].strip()[:500]})  # fmt: skip

    try:
        one()
    finally:
        for lg, lv in zip(quiet, levels, strict=True):
            lg.setLevel(lv)
        if bars:
            datasets.enable_progress_bars()
        if not workdir:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"surface": name, "what": surf.what, **{k: counts[k] for k in ("inputs", "read", "skipped", "rejected", "crashes")},
            "reasons": dict(reasons.most_common()), "examples": examples}  # fmt: skip
