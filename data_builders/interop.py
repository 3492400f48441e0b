"""Convert between our datasets and LLaVA/ECGInstruct JSON or official ECG-QA JSON.

    python data_builders/interop.py export-llava --data data/instruct --out export/llava --split train
    python data_builders/interop.py import-llava --json ecginstruct.json --out data/ecginstruct
    python data_builders/interop.py export-ecgqa --data data/instruct --out export/ecgqa_test.json --split test
    python data_builders/interop.py import-ecgqa --shards ecgqa/ptbxl/template/test --out data/ecgqa \\
        [--ptbxl-root ptb-xl] [--template-options ecgqa/ptbxl/answers_for_each_template.csv]
"""

from __future__ import annotations

import argparse

from ecgllm.data.interop import export_ecgqa, export_llava, import_ecgqa, import_llava


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("export-llava")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="train")
    p = sub.add_parser("import-llava")
    p.add_argument("--json", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="train")
    p = sub.add_parser("export-ecgqa")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="test")
    p = sub.add_parser("import-ecgqa")
    p.add_argument("--shards", nargs="+", required=True, help="shard files or folders")
    p.add_argument("--out", required=True)
    p.add_argument("--ptbxl-root", default=None)
    p.add_argument("--template-options", default=None)
    p.add_argument("--workers", type=int, default=1)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "export-llava":
            r = export_llava(a.data, a.out, a.split)
        elif a.cmd == "import-llava":
            r = import_llava(a.json, a.out, a.split)
        elif a.cmd == "export-ecgqa":
            r = export_ecgqa(a.data, a.out, a.split)
        else:
            r = import_ecgqa(a.shards, a.out, a.ptbxl_root, a.template_options, workers=a.workers)
    except (ValueError, FileNotFoundError, KeyError) as e:
        ap.exit(2, f"error: {e}\n")
    print(f"{a.cmd}: " + ", ".join(f"{k} {v}" for k, v in r.items()))
    return r


if __name__ == "__main__":
    main()
