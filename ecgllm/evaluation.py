"""Running benchmarks: generation and likelihood scoring, streamed samples.jsonl, resumable, scored.

    results = run_benchmarks(model, processor, data_dir="runs/default/instruct", out="runs/eval",
                             benchmarks=["ecgqa", "detect", "mcq", "measure", "report", "ground"])

Benchmarks are the YAML files of ecgllm/benchmarks (one per benchmark: which held-out samples,
how the model answers, which scorer, the headline metric, the chance level). The model answers
by greedy generation (batched, KV cache, left padding), by option log-likelihood (the sum of the
log-probabilities of each candidate answer's tokens, computed on the same assistant span the
training loss uses) and, for detection, by P(yes) per label from the likelihoods of "yes" and
"no" to the verify question. Every answer is appended to samples.jsonl as soon as its batch is
done; a rerun skips what is there (a half-written last line is redone), so a crash loses at most
one batch. Only answers of the same weights, data and settings are reused (samples.stamp.json);
anything else starts afresh. results.json records every metric with a 95% bootstrap interval (resampling samples),
the chance level, counts, decoding settings, seed, model and data fingerprints, package versions
and the git commit. `perturbation=("noise", 0.1)` runs the same on perturbed signals (pages are
redrawn from the perturbed signal), for robustness sweeps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import crash_point, write_text
from .benchmarks import Benchmark, available, load_benchmark
from .data.collator import EcgCollator
from .data.dataset import EcgInstructionDataset
from .metrics.grounding import ground_scores
from .metrics.parsing import match_options, parse_choice
from .metrics.scores import (
    class_recall,
    mcq_accuracy,
    measurement_errors,
    multilabel,
    qa_exact_match,
    report_scores,
)

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
VERIFY = "Does this ECG show symptoms of {label}?"  # the ECG-QA verify wording the model learns
log = logging.getLogger(__name__)
KEEP = ("id", "task", "question_type", "attribute_type", "options", "answer", "value", "tolerance",
        "evidence", "features", "record_ids")  # fmt: skip


def _fingerprint(path: str | Path) -> str:
    h = hashlib.sha256()
    p = Path(path)
    for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
        if f.is_file() and f.suffix in (".json", ".safetensors", ".arrow"):
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())
    return h.hexdigest()[:16]


def model_fingerprint(model) -> str:
    """A digest of the model's weights as loaded (base + adapter): what made the predictions.
    Hashes every tensor's bytes (~1 s for a 270M model); meta tensors by name and shape only."""
    h = hashlib.blake2b(digest_size=8)
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        if t.device.type != "meta":
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    except Exception:
        return None


# --- answering -----------------------------------------------------------------------------------


@torch.no_grad()
def generate_batch(
    model, processor, collator: EcgCollator, rows: list[dict], max_new_tokens: int
) -> list[str]:
    """Greedy answers to the first user turn of each row (KV cache on, left padding)."""
    tok = processor.tokenizer
    side = tok.padding_side
    tok.padding_side = "left"
    try:
        texts, ecgs, masks, images = [], [], [], []
        for r in rows:
            texts.append(
                processor.apply_chat_template(r["messages"][:1], add_generation_prompt=True)
            )
            e, m, i = collator.row_inputs(r)
            ecgs, masks, images = ecgs + e, masks + m, images + i
        batch = processor(text=texts, ecgs=ecgs or None, images=images or None,
                          lead_masks=masks or None)  # fmt: skip
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[:, batch["input_ids"].shape[1] :]
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
    finally:
        tok.padding_side = side


def _with_turns(row: dict, question: str | None, answer: str) -> dict:
    user = row["messages"][0]
    if question is not None:
        user = {**user, "content": [c if c["type"] != "text" else {**c, "text": question}
                                    for c in user["content"]]}  # fmt: skip
    return {**row, "messages": [user, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]}  # fmt: skip


@torch.no_grad()
def loglik_batch(model, collator: EcgCollator, items: list[dict], batch_size: int) -> list[float]:
    """Sum of log p(assistant tokens | prompt) for rows whose messages are [user, assistant]:
    exactly the tokens the training loss supervises (the chat template's assistant span).
    Candidates of one sample (same id) share its ECG and page: those are processed once."""
    cache: dict[str, dict[str, torch.Tensor]] = {}
    out: list[float] = []
    for s in range(0, len(items), batch_size):
        chunk = items[s : s + batch_size]
        if collator.native is not None:  # the backbone's own processor expands the pages
            batch = collator(chunk)
            if batch["labels"].shape[0] != len(chunk):
                raise ValueError(
                    f"candidate answers dropped ({dict(collator.dropped)}): raise max_length"
                )
            out += _sum_logprobs(model, batch)
            continue
        seqs, feats = [], []
        for it in chunk:
            enc = collator._truncate(*collator.encode(it["messages"]), it.get("id", "?"))
            if enc is None:
                raise ValueError(
                    f"candidate answer of {it.get('id')} dropped ({dict(collator.dropped)}): raise max_length"
                )
            seqs.append(enc)
            key = str(it.get("id", id(it)))
            if key not in cache:
                cache[key] = collator.features(*collator.row_inputs(it))
            feats.append(cache[key])
        batch = collator.pad(seqs)
        for k in feats[0]:
            batch[k] = torch.cat([f[k] for f in feats])
        out += _sum_logprobs(model, batch)
    return out


def _sum_logprobs(model, batch: dict) -> list[float]:
    """Per row, the sum of log p over the tokens that have labels. The LM head and log-softmax
    run only at positions that predict a labelled token (the union over the batch): a real
    vocabulary (262k for Gemma) makes the full logits large."""
    labels = batch.pop("labels")
    pos = (labels[:, 1:] != -100).any(0).nonzero().squeeze(-1)
    logits = model(**batch, logits_to_keep=pos).logits
    target = labels[:, pos + 1]
    keep = target != -100
    lp = torch.log_softmax(logits[keep].float(), dim=-1)
    tok_lp = lp.gather(-1, target[keep][:, None]).squeeze(-1)
    row = keep.nonzero()[:, 0]
    return torch.zeros(labels.shape[0]).index_add_(0, row, tok_lp).tolist()


def _question(row: dict) -> str:
    return " ".join(c["text"] for c in row["messages"][0]["content"] if c["type"] == "text")


def _labels(options: Sequence[str]) -> list[str]:
    return [o for o in options if o != "none"]


def answer_rows(model, processor, collator, bench: Benchmark, rows: list[dict], batch_size: int,
                max_new_tokens: int | None = None) -> list[dict]:  # fmt: skip
    """Every method of the benchmark on a batch of rows -> records for samples.jsonl."""
    recs = [
        {k: r.get(k) for k in KEEP} | {"benchmark": bench.name, "question": _question(r)}
        for r in rows
    ]
    if "generate" in bench.methods:
        preds = generate_batch(
            model, processor, collator, rows, max_new_tokens or bench.max_new_tokens
        )
        for rec, p in zip(recs, preds, strict=True):
            rec["prediction"] = p
    if "loglik" in bench.methods:
        items, owner = [], []
        for i, r in enumerate(rows):
            for j, o in enumerate(r["options"]):
                items.append(_with_turns(r, None, f"{LETTERS[j]}. {o}"))
                owner.append(i)
        ll = loglik_batch(model, collator, items, 4 * batch_size)
        for rec in recs:
            rec["loglik"] = []
        for i, v in zip(owner, ll, strict=True):
            recs[i]["loglik"].append(v)
    if "yes_prob" in bench.methods:
        items, owner = [], []
        for i, r in enumerate(rows):
            for label in _labels(r["options"]):
                for ans in ("yes", "no"):
                    items.append(_with_turns(r, VERIFY.format(label=label), ans))
                    owner.append((i, label, ans))
        ll = loglik_batch(model, collator, items, 4 * batch_size)
        pairs: dict[tuple[int, str], dict[str, float]] = {}
        for (i, label, ans), v in zip(owner, ll, strict=True):
            pairs.setdefault((i, label), {})[ans] = v
        for rec in recs:
            rec["label_scores"] = {}
        for (i, label), d in pairs.items():
            recs[i]["label_scores"][label] = float(1 / (1 + np.exp(d["no"] - d["yes"])))
    return recs


# --- scoring -------------------------------------------------------------------------------------


def _group(r: dict, bench: Benchmark) -> str:
    return " / ".join(str(r.get(g) or "-") for g in bench.groups) if bench.groups else ""


def score_exact_match(bench: Benchmark, recs: list[dict]) -> dict:
    res = qa_exact_match([r["prediction"] for r in recs], [r["answer"] for r in recs],
                         [r["options"] for r in recs], groups=[_group(r, bench) for r in recs])  # fmt: skip
    if bench.groups:  # also one breakdown per field (question type alone, attribute type alone)
        for g in bench.groups:
            by: dict[str, list[bool]] = {}
            for r, ok in zip(recs, res["per_sample"], strict=True):
                by.setdefault(str(r.get(g) or "-"), []).append(ok)
            res[f"by_{g}"] = {k: {"exact_match": float(np.mean(v)), "n": len(v)} for k, v in sorted(by.items())}  # fmt: skip
    return res


def score_mcq(bench: Benchmark, recs: list[dict]) -> dict:
    res: dict[str, Any] = {"n": len(recs)}
    gold = [r["answer"][0] for r in recs]
    per = None
    if all("prediction" in r for r in recs):
        g = mcq_accuracy([r["prediction"] for r in recs], gold, [r["options"] for r in recs])
        res.update(accuracy_generate=g["accuracy"], unparsed_rate=g["unparsed_rate"])
        per = g["per_sample"]
    if all("loglik" in r for r in recs):
        picks = [r["options"][int(np.argmax(r["loglik"]))] for r in recs]
        ok = [p == g for p, g in zip(picks, gold, strict=True)]
        res["accuracy_loglik"] = float(np.mean(ok)) if ok else float("nan")
        per = ok if bench.metric == "accuracy_loglik" else per
    else:
        picks = [parse_choice(r.get("prediction"), r["options"]) or "(unparsed)" for r in recs]
    res["per_sample"] = per or []
    if bench.confusion and recs:
        names = sorted(set(gold) | set(picks))
        idx = {n: i for i, n in enumerate(names)}
        m = np.zeros((len(names), len(names)), dtype=int)
        for g, p in zip(gold, picks, strict=True):
            m[idx[g], idx[p]] += 1
        res["confusion"] = {"labels": names, "matrix": m.tolist(), "rows": "gold", "columns": "predicted",
                            "from": "loglik" if "loglik" in bench.methods else "generate"}  # fmt: skip
    by: dict[str, list[bool]] = {}
    for r, ok in zip(recs, res["per_sample"], strict=True):
        by.setdefault(_group(r, bench) or "all", []).append(ok)
    res["by_group"] = {
        k: {bench.metric: float(np.mean(v)), "n": len(v)} for k, v in sorted(by.items())
    }
    return res


def score_rhythm(bench: Benchmark, recs: list[dict]) -> dict:
    """The rhythm question as a classification: the answer by option log-likelihood (or the
    parsed generation when there is no loglik), per-class recall, balanced accuracy, AF
    sensitivity/specificity and the confusion matrix; `score_mcq`'s figures beside them."""
    res = score_mcq(bench, recs)
    gold = [r["answer"][0] for r in recs]
    if all("loglik" in r for r in recs):
        picks = [r["options"][int(np.argmax(r["loglik"]))] for r in recs]
    else:
        picks = [parse_choice(r.get("prediction"), r["options"]) for r in recs]
    res.update(class_recall(gold, picks, positive="atrial fibrillation"))
    return res


def score_detect(bench: Benchmark, recs: list[dict]) -> dict:
    res: dict[str, Any] = {"n": len(recs)}
    if all("label_scores" in r for r in recs):
        sets: dict[str, list[dict]] = {}
        for r in recs:
            sets.setdefault(r.get("attribute_type") or "-", []).append(r)
        per_label, by = {}, {}
        for name, rs in sorted(sets.items()):
            labels = _labels(rs[0]["options"])
            y = np.array([[lab in r["answer"] for lab in labels] for r in rs], dtype=int)
            s = np.array([[r["label_scores"][lab] for lab in labels] for r in rs])
            m = multilabel(y, s, labels)
            by[name] = {k: m[k] for k in ("macro_auc", "micro_auc", "macro_f1", "micro_f1", "hamming_loss")} | {"n": len(rs)}  # fmt: skip
            per_label.update({f"{name}: {k}": v for k, v in m["per_label"].items()})
        aucs = [v["auc"] for v in per_label.values() if "auc" in v]
        res.update(macro_auc=float(np.mean(aucs)) if aucs else float("nan"),
                   macro_f1=float(np.mean([v["f1"] for v in per_label.values()])) if per_label else float("nan"),
                   hamming_loss=float(np.mean([by[k]["hamming_loss"] for k in by])) if by else float("nan"),
                   by_group=by, per_label=per_label, auc_basis="P(yes) to the verify question per label")  # fmt: skip
    if all("prediction" in r for r in recs):
        em = qa_exact_match([r["prediction"] for r in recs], [r["answer"] for r in recs],
                            [r["options"] for r in recs])  # fmt: skip
        res.update(exact_match_generate=em["exact_match"], unparsed_rate=em["unparsed_rate"])
        # ECGBench compatibility: "AUC" on the 0/1 labels parsed from the generated list
        hard = []
        for r in recs:
            labels = _labels(r["options"])
            got = set(match_options(r["prediction"], r["options"]) or [])
            hard.append(([lab in r["answer"] for lab in labels], [lab in got for lab in labels]))
        ys = np.array([v for h in hard for v in h[0]], dtype=int)
        ps = np.array([v for h in hard for v in h[1]], dtype=float)
        if 0 < ys.sum() < len(ys):
            from .metrics.scores import _auc

            res["ecgbench_hard_label_auc"] = _auc(ys, ps)
            res["ecgbench_note"] = "AUC on 0/1 predictions pooled over labels (ECGBench compatibility), not a ranking AUC"  # fmt: skip
        res.setdefault("per_sample", em["per_sample"])
    return res


def score_measure(bench: Benchmark, recs: list[dict]) -> dict:
    res = measurement_errors([r["prediction"] for r in recs], [r["value"] for r in recs],
                             [r["tolerance"] for r in recs])  # fmt: skip
    by: dict[str, list[bool]] = {}
    for r, ok in zip(recs, res["per_sample"], strict=True):
        by.setdefault(_group(r, bench), []).append(ok)
    res["by_group"] = {k: {"within_tolerance": float(np.mean(v)), "n": len(v)} for k, v in sorted(by.items())}  # fmt: skip
    return res


def score_report(bench: Benchmark, recs: list[dict]) -> dict:
    res = report_scores([r["prediction"] for r in recs], [r["answer"][0] for r in recs])
    from .text.extract import extract_scp_codes

    per = []
    for r in recs:  # per-sample clinical F1, for intervals and the gallery
        a, b = extract_scp_codes(r["prediction"] or ""), extract_scp_codes(r["answer"][0])
        per.append(1.0 if not a and not b else 2 * len(a & b) / (len(a) + len(b)))
    res["per_sample"] = per
    return res


def score_ground(bench: Benchmark, recs: list[dict]) -> dict:
    return ground_scores([r["prediction"] for r in recs], [r["answer"] for r in recs],
                         [json.loads(r["evidence"] or "{}") for r in recs],
                         [json.loads(r["features"] or "{}") for r in recs])  # fmt: skip


SCORERS: dict[str, Callable[[Benchmark, list[dict]], dict]] = {
    "exact_match": score_exact_match,
    "mcq": score_mcq,
    "rhythm": score_rhythm,
    "detect": score_detect,
    "measure": score_measure,
    "report": score_report,
    "ground": score_ground,
}


def _bootstrap(
    bench: Benchmark, recs: list[dict], n: int = 200, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of the headline metric, resampling samples with replacement."""
    if len(recs) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        sub = [recs[i] for i in rng.integers(0, len(recs), len(recs))]
        v = SCORERS[bench.scorer](bench, sub).get(bench.metric, float("nan"))
        if v == v:
            vals.append(v)
    if not vals:
        return float("nan"), float("nan")
    return float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))


def chance_level(bench: Benchmark, recs: list[dict], train: list[dict] | None) -> tuple[float, str]:
    """(chance value of the headline metric, how it was computed)."""
    if bench.chance == "auc":
        return 0.5, "AUC of an uninformative score"
    if bench.chance == "uniform_option":
        v = [1 / len(r["options"]) if len(r["answer"]) == 1 and r["options"] else 0.0 for r in recs]
        return float(np.mean(v)) if v else float("nan"), "a uniformly random option"
    if not train:
        return float("nan"), "no training samples to take a majority from"
    if bench.scorer == "measure":
        med: dict[str, float] = {}
        for k in {r["attribute_type"] for r in train}:
            med[k] = float(np.median([r["value"] for r in train if r["attribute_type"] == k]))
        const = [{**r, "prediction": f"{med.get(r['attribute_type'], 0):.0f}"} for r in recs]
        how = "always the training median of each quantity"
    else:
        top = Counter(r["messages"][-1]["content"][0]["text"] for r in train).most_common(1)[0][0]
        const = [{**r, "prediction": top} for r in recs]
        how = "always the most frequent training answer"
    return float(SCORERS[bench.scorer](bench, const)[bench.metric]), how


def score(bench: Benchmark, recs: list[dict], train: list[dict] | None = None) -> dict[str, Any]:
    res = SCORERS[bench.scorer](bench, recs)
    res.pop("per_sample", None)
    res.update(main_metric=bench.metric, higher_is_better=bench.higher_is_better,
               value=res.get(bench.metric, float("nan")), ci95=_bootstrap(bench, recs))  # fmt: skip
    res["chance"], res["chance_basis"] = chance_level(bench, recs, train)
    return res


# --- running -------------------------------------------------------------------------------------


def _perturbed(row: dict, perturbation: tuple[str, float], build: dict, seed: int) -> dict:
    from .render.store import render_page
    from .signal.perturb import perturb
    from .signal.record import STANDARD_12, ECGRecord

    kind, level = perturbation
    row = dict(row)
    fs = float(build.get("fs", 500.0))
    sigs, masks, images = [], [], []
    for k in range(len(row["record_ids"])):
        sig, mask = perturb(row["signal"][k], row["lead_mask"][k], fs, kind, level, seed=seed + k)
        sigs.append(sig)
        masks.append(mask)
        if row.get("images"):
            rec = ECGRecord(
                signal=sig,
                fs=fs,
                leads=list(STANDARD_12),
                record_id=row["record_ids"][k],
                lead_mask=mask,
            )
            leads = [ld for ld, m in zip(STANDARD_12, mask, strict=True) if m]
            layout = build.get("layout", "3x4+II") if len(leads) == 12 else "12x1"
            from .render import render_ecg

            if len(leads) == 12:
                img, _ = render_page(rec, layout, build.get("paper", "letter"), build.get("dpi", 200.0),
                                     build.get("style", "red"), build.get("augment"), seed)  # fmt: skip
            else:
                img, _ = render_ecg(rec, layout=layout, paper=build.get("paper", "letter"),
                                    dpi=build.get("dpi", 200.0), style=build.get("style", "red"), leads=leads)  # fmt: skip
            images.append(img.convert("RGB"))
    row["signal"], row["lead_mask"] = np.stack(sigs), np.stack(masks)
    if row.get("images"):
        row["images"] = images
    return row


def _drop_cut_line(path: Path) -> None:
    """A run killed while writing leaves a last line without its newline: cut it off, so the
    answers appended next start on a line of their own (the cut answer is asked again)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def _read_done(path: Path) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash: it will be redone
                continue
            done[f"{r['benchmark']}:{r['id']}"] = r
    return done


def run_benchmarks(model, processor, data_dir: str | Path, out: str | Path, benchmarks: Sequence[str],
                   split: str = "test", limit: int | None = None, batch_size: int = 8,
                   max_new_tokens: int | None = None, blank_ecg: bool = False, blank_image: bool = False,
                   perturbation: tuple[str, float] | None = None, seed: int = 0, progress: bool = True,
                   model_path: str | None = None) -> dict:  # fmt: skip
    benches = []
    unknown = []
    for b in benchmarks:
        try:
            benches.append(load_benchmark(b))
        except ValueError:
            unknown.append(b)
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; choose from {available()}")
    torch.manual_seed(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = EcgInstructionDataset(data_dir, split)
    train = None
    if any(b.chance == "train_majority" for b in benches):
        try:
            train = EcgInstructionDataset(data_dir, "train").samples
        except KeyError:
            train = None
    collator = EcgCollator(processor, blank_ecg=blank_ecg, blank_image=blank_image)
    path = out / "samples.jsonl"
    # finished answers are reused on a re-run only if the same model, data and settings made them
    weights = model_fingerprint(model)
    stamp = {"model": weights, "data": _fingerprint(Path(data_dir) / "samples"), "split": split,
             "max_new_tokens": max_new_tokens, "blank_ecg": blank_ecg, "blank_image": blank_image,
             "perturbation": list(perturbation) if perturbation else None, "seed": seed}  # fmt: skip
    stamp_path = out / "samples.stamp.json"
    if path.exists() and (not stamp_path.exists() or json.loads(stamp_path.read_text()) != stamp):
        log.warning("%s was written by another model, data or settings: answering afresh", path)
        path.unlink()
    write_text(stamp_path, json.dumps(stamp))
    _drop_cut_line(path)
    done = _read_done(path)
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    from tqdm.auto import tqdm

    with open(path, "a") as f:
        for bench in benches:
            idx = bench.select(ds.samples)[:limit]
            ids = ds.samples.select(idx)["id"] if idx else []
            todo = [i for i, sid in zip(idx, ids, strict=True) if f"{bench.name}:{sid}" not in done]
            bar = tqdm(total=len(idx), initial=len(idx) - len(todo), desc=bench.name, unit="q",
                       disable=not progress)  # fmt: skip
            for s in range(0, len(todo), batch_size):
                rows = [ds[i] for i in todo[s : s + batch_size]]
                if perturbation is not None:
                    rows = [
                        _perturbed(r, perturbation, ds.report.get("config", {}), seed) for r in rows
                    ]
                for rec in answer_rows(
                    model, processor, collator, bench, rows, batch_size, max_new_tokens
                ):
                    f.write(json.dumps(rec) + "\n")
                    done[f"{bench.name}:{rec['id']}"] = rec
                f.flush()
                crash_point(f"{bench.name} batch")
                bar.update(len(rows))
            bar.close()
            recs = [done[f"{bench.name}:{sid}"] for sid in ids]
            tr = None
            if bench.chance == "train_majority" and train is not None:
                tidx = bench.select(train)
                tr = train.select(tidx).to_list() if tidx else None
            results[bench.name] = (
                score(bench, recs, tr) if recs else {"n": 0, "main_metric": bench.metric}
            )
    model.train(was_training)
    import accelerate
    import transformers

    report = {
        "results": results,
        "benchmarks": {b.name: {"description": b.description, "methods": list(b.methods), "file": Path(b.source).name}
                       for b in benches},
        "config": {"split": split, "limit": limit, "batch_size": batch_size, "max_new_tokens": max_new_tokens,
                   "decoding": "greedy", "blank_ecg": blank_ecg, "blank_image": blank_image,
                   "perturbation": list(perturbation) if perturbation else None, "seed": seed},
        "model": {"path": model_path, "fingerprint": weights},
        "data": {"path": str(data_dir), "fingerprint": stamp["data"]},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "accelerate": accelerate.__version__},
        "git_commit": _git_commit(),
        "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    write_text(out / "results.json", json.dumps(report, indent=1, default=float))
    return report


def run_sweep(model, processor, data_dir: str | Path, out: str | Path, benchmarks: Sequence[str],
              settings: Sequence[tuple[str, float]], reference: str | Path | None = None, **kw) -> dict:  # fmt: skip
    """The benchmarks under each perturbation setting (each resumable in OUT/KIND-LEVEL), plus the
    unperturbed reference (taken from `reference`/results.json when that run exists);
    sweep.json maps setting -> headline metric per benchmark."""
    out = Path(out)
    table: dict[str, dict[str, float]] = {}
    ref = Path(reference) / "results.json" if reference else None
    runs = list(settings)
    if ref is not None and ref.exists():
        table["none=0"] = {b: v.get("value", float("nan")) for b, v in json.loads(ref.read_text())["results"].items()
                           if b in benchmarks}  # fmt: skip
    else:
        runs.insert(0, ("none", 0.0))
    for kind, level in runs:
        sub = out / f"{kind}-{level:g}"
        r = run_benchmarks(model, processor, data_dir, sub, benchmarks,
                           perturbation=None if kind == "none" else (kind, level), **kw)  # fmt: skip
        table[f"{kind}={level:g}"] = {
            b: v.get("value", float("nan")) for b, v in r["results"].items()
        }
    units = {"noise": "mV SD", "wander": "mV", "leads": "leads kept"}
    sweep = {"settings": table, "units": units}
    write_text(out / "sweep.json", json.dumps(sweep, indent=1, default=float))
    return sweep
