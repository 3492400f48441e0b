"""Build an instruction dataset (records + samples) from an ECG database.

    python data_builders/build.py --source synthetic --root data/sim --out data/instruct --workers 2
    python data_builders/build.py --source ptbxl --root ptb-xl --out data/ptbxl_instruct \\
        --tasks report,detect,ecgqa --modalities signal --workers 8
    python data_builders/build.py --source ludb --root ludb --out data/ludb
    python data_builders/build.py --source challenge --root challenge2021/training --out data/cinc \\
        --option ptbxl_database=ptb-xl/ptbxl_database.csv      # PTB-XL's patients for its HR records

Sources: ptbxl, synthetic (the simulator's PTB-XL layout), mimic, wfdb (any folder), ludb
(labels from LUDB's statements), challenge (PhysioNet/CinC 2020/2021 folders, SNOMED-CT `#Dx`
mapped to SCP codes; unmapped codes are kept per record and counted in the build report).
--option KEY=VALUE passes a reader option (challenge: ptbxl_database=CSV, patients=CSV).

Writes OUT/records (signal float16 [12, 5000] at 500 Hz, page image, labels, measurements),
OUT/samples (train/validation/test; splits from the source, never one patient in two),
OUT/build_report.json (counts per split/task/question type/label, rejects, seconds) and
OUT/rejects.csv. Re-running with the same settings resumes an interrupted build or reports the
finished one; the same seed gives the same rows.
"""

from __future__ import annotations

import argparse

from ecgllm.cli import add_fields, field_values
from ecgllm.data import TASKS, BuildConfig, build_dataset
from ecgllm.data.tasks import CHECK_TASKS, OPTIONAL_TASKS
from ecgllm.render.augment import PRESETS
from ecgllm.render.layout import LAYOUTS, PAPERS_MM
from ecgllm.render.raster import STYLES
from ecgllm.signal.databases import SOURCES

# choices of the fields that have a closed set of values (the rest are checked by BuildConfig)
CHOICES = {"source": SOURCES, "tasks": (*TASKS, *CHECK_TASKS, *OPTIONAL_TASKS), "modalities": ("signal", "image"),
           "layout": LAYOUTS, "paper": PAPERS_MM, "style": STYLES, "augment": PRESETS,
           "features": ("auto", "measured", "truth", "machine"), "sampling_rate": (100, 500),
           "report_text": ("normalised", "source"), "single_split": ("train", "validation", "test")}  # fmt: skip
SKIP = ("options", "record_ids")  # --option KEY=VALUE below; record ids come from ECG-QA imports


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_fields(ap, BuildConfig, skip=SKIP, choices=CHOICES)
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a reader option, e.g. ptbxl_database=PATH for --source challenge")  # fmt: skip
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    options = {}
    for kv in args.option:
        key, sep, value = kv.partition("=")
        if not sep or not key.strip():
            ap.error(f"--option {kv!r}: expected KEY=VALUE")
        options[key.strip()] = value.strip()
    try:
        cfg = BuildConfig(**field_values(args, BuildConfig, skip=SKIP), options=options)
        r = build_dataset(cfg, progress=not args.quiet)
    except (ValueError, FileNotFoundError) as e:
        ap.exit(2, f"error: {e}\n")
    state = " (already complete)" if r.get("resumed") == "complete" else ""
    splits = ", ".join(f"{k} {v}" for k, v in r["samples_by_split"].items())
    tasks = ", ".join(f"{k} {v}" for k, v in r["samples_by_task"].items())
    print(f"built {r['samples']} samples ({splits}; {tasks}) from {r['records']} of {r['records_listed']} records, "
          f"{sum(r['rejects'].values())} rejected {r['rejects'] or ''} in {r['seconds']['total']:.1f} s{state} -> {args.out}")  # fmt: skip
    return r


if __name__ == "__main__":
    main()
