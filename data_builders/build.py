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

from ecgllm.data import TASKS, BuildConfig, build_dataset
from ecgllm.data.tasks import CHECK_TASKS
from ecgllm.render.augment import PRESETS
from ecgllm.render.layout import LAYOUTS
from ecgllm.signal.databases import SOURCES


def _list(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--source", required=True, choices=SOURCES)
    ap.add_argument("--root", required=True, help="database folder")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument(
        "--tasks",
        type=_list,
        default=TASKS,
        help=f"comma list of {','.join(TASKS)} (default all) or the check tasks {','.join(CHECK_TASKS)}",
    )
    ap.add_argument(
        "--modalities", type=_list, default=("signal", "image"), help="signal,image (default both)"
    )
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--chunk-size", type=int, default=BuildConfig.chunk_size,
                    help="records per saved chunk (the unit an interrupted build resumes from)")  # fmt: skip
    ap.add_argument("--limit", type=int, default=None, help="first N records only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layout", default="3x4+II", choices=LAYOUTS)
    ap.add_argument("--augment", default=None, choices=sorted(PRESETS))
    ap.add_argument("--features", default="auto", choices=["auto", "measured", "truth", "machine"],
                    help="interval values: auto = simulator truth / MIMIC machine / our measurement")  # fmt: skip
    ap.add_argument(
        "--sampling-rate", type=int, default=500, choices=[100, 500], help="PTB-XL records to read"
    )
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a reader option, e.g. ptbxl_database=PATH for --source challenge")  # fmt: skip
    ap.add_argument("--report-text", default="normalised", choices=["normalised", "source"],
                    help="report targets: normalised English from the labels (default) or the source's own text")  # fmt: skip
    ap.add_argument("--single-split", default=None, choices=["train", "validation", "test"],
                    help="put every record in this split (an external test set)")  # fmt: skip
    ap.add_argument("--strict", action="store_true", help="fail on the first bad record or sample")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error("--workers must be >= 1")
    if args.chunk_size < 1:
        ap.error("--chunk-size must be >= 1")
    options = {}
    for kv in args.option:
        key, sep, value = kv.partition("=")
        if not sep or not key.strip():
            ap.error(f"--option {kv!r}: expected KEY=VALUE")
        options[key.strip()] = value.strip()
    try:
        cfg = BuildConfig(source=args.source, root=args.root, out=args.out, tasks=args.tasks,
                          modalities=args.modalities, workers=args.workers, limit=args.limit, seed=args.seed,
                          layout=args.layout, augment=args.augment, features=args.features,
                          sampling_rate=args.sampling_rate, strict=args.strict, options=options,
                          single_split=args.single_split, report_text=args.report_text,
                          chunk_size=args.chunk_size)  # fmt: skip
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
