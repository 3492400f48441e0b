"""Publish a trained model: merge adapters, write a Hub-ready folder with a model card, check it
in a fresh process, and push it to the Hugging Face Hub.

    python recipes/merge_and_push.py --checkpoint runs/default/sft/final --out runs/default/export \\
        --results runs/default/eval                              # merge + card + verify, no push
    python recipes/merge_and_push.py --checkpoint ... --out ... --push-to-hub ORG/NAME --dry-run
    HF_TOKEN=... python recipes/merge_and_push.py --checkpoint ... --out ... --push-to-hub ORG/NAME --private
    python recipes/merge_and_push.py --checkpoint ... --out DIR --adapter-only   # PEFT folder for the base

Without --push-to-hub, the checkpoint recipe's `hub:` section decides (push: true, repo_id,
private). Nothing is pushed unless the exported folder reloads in a fresh process (remote code, without
ecgllm) with logits equal to base + adapter (|diff| <= 1e-4 + 1e-4*|logit|) and the same greedy
generation. A checkpoint trained on a 4-/8-bit base is refused unless --dequantize.
"""

from __future__ import annotations

import argparse
import logging

from ecgllm.export import (
    ExportError,
    export_adapter,
    export_merged,
    load_checkpoint,
    push_folder,
    verify_export,
)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--checkpoint", required=True, help="a training output: OUT/final or OUT/checkpoint-N"
    )
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--base", default=None, help="the base model folder (default: found next to the checkpoint)"
    )
    ap.add_argument(
        "--results",
        default=None,
        help="an eval/run.py output folder (or results.json) for the card",
    )
    ap.add_argument("--push-to-hub", default=None, metavar="ORG/NAME")
    ap.add_argument("--private", action="store_true")
    ap.add_argument(
        "--dry-run", action="store_true", help="list what would be uploaded; upload nothing"
    )
    ap.add_argument("--adapter-only", action="store_true")
    ap.add_argument(
        "--dequantize",
        action="store_true",
        help="allow merging a QLoRA checkpoint (dequantized base)",
    )
    ap.add_argument("--license", default="apache-2.0")
    ap.add_argument(
        "--dataset", action="append", default=[], help="Hub dataset ids for the card (repeatable)"
    )
    ap.add_argument("--max-shard-size", default="2GB")
    ap.add_argument(
        "--skip-verify",
        action="store_true",
        help="do not reload in a fresh process (never with a push)",
    )
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if a.skip_verify and a.push_to_hub and not a.dry_run:
        ap.exit(2, "error: --skip-verify cannot be used with a push\n")
    try:
        model, proc, info = load_checkpoint(a.checkpoint, a.base, dequantize=a.dequantize)
        hub = (info.get("recipe") or {}).get("hub") or {}
        if a.push_to_hub is None and hub.get("push"):  # the recipe's hub section
            a.push_to_hub, a.private = (
                hub.get("repo_id"),
                a.private or bool(hub.get("private", True)),
            )
            if a.skip_verify and not a.dry_run:
                raise ValueError(
                    "--skip-verify cannot be used with a push (hub.push in the recipe)"
                )
        kw = dict(repo_id=a.push_to_hub, results=a.results, license=a.license, datasets=a.dataset)
        if a.adapter_only:
            files = export_adapter(model, proc, a.out, info, **kw)
            check = {"skipped": "adapter-only export (loads with PeftModel on its base)"}
        else:
            files = export_merged(model, proc, a.out, info, max_shard_size=a.max_shard_size, **kw)
            check = {"skipped": True} if a.skip_verify else verify_export(a.out, model, proc)
        plan = (
            push_folder(a.out, a.push_to_hub, private=a.private, dry_run=a.dry_run)
            if a.push_to_hub
            else None
        )
    except (ExportError, FileNotFoundError, ValueError, PermissionError) as e:
        ap.exit(2, f"error: {e}\n")
    if plan and plan["dry_run"]:
        print(f"dry run: would upload {len(plan['files'])} files ({plan['bytes'] / 1e6:.1f} MB) to {plan['repo_id']}"
              + (" (private)" if plan["private"] else "") + ":")  # fmt: skip
        for name, size in plan["files"]:
            print(f"  {size:>12,d}  {name}")
    if "max_abs_diff" in check:
        print(f"verified in a fresh process ({check['loaded_from']}): max |logit diff| {check['max_abs_diff']:.2e} "
              f"(tolerance {check['atol']:g} + {check['rtol']:g}*|logit|), same greedy generation on {check['samples']} samples")  # fmt: skip
    pushed = (
        f"; pushed to https://huggingface.co/{a.push_to_hub}"
        if plan and not plan["dry_run"]
        else ""
    )
    print(
        f"exported {info['mode']} checkpoint {a.checkpoint} -> {a.out} ({len(files)} files){pushed}"
    )
    return {
        "files": files,
        "verify": check,
        "push": plan,
        "info": {k: v for k, v in info.items() if k != "recipe"},
    }


if __name__ == "__main__":
    main()
