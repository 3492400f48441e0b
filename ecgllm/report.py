"""report.html: one self-contained page (images inlined) to look at an evaluation.

    write_report("runs/eval", blank="runs/eval_blank", sweep="runs/sweep", data="runs/instruct")

Sections: the metric table (value with its 95% interval, chance level, blank-ECG score, n,
unparsed rate), per-label F1/AUC bars for detection, confusion matrices for single-label tasks,
ECG-QA accuracy per question type, robustness sweep curves, the misread records of single-answer
questions scored by option log-likelihood (which record, what it was called, its measured rate,
RR variation and intervals: where to look first on real records), and a gallery of examples (the
ECG page, the question, the gold answer, the prediction, right or wrong).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_text
from .metrics.parsing import match_options, parse_choice, parse_number

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}
th{background:#f6f6f6}.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#0a7d2c;font-weight:600}.bad{color:#b3261e;font-weight:600}.muted{color:#777}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:14px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px}.card img{width:100%;border-radius:4px}
.card p{margin:.3em 0}img.plot{max-width:100%}
"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))


def correct(rec: dict) -> bool | None:
    """Whether one answer is right, for the gallery (None where there is no single right answer)."""
    b, p = rec.get("benchmark"), rec.get("prediction")
    if rec.get("loglik"):
        return rec["options"][int(np.argmax(rec["loglik"]))] == rec["answer"][0]
    if b in ("mcq", "rhythm"):
        return parse_choice(p, rec["options"]) == rec["answer"][0]
    if rec.get("options"):
        got = match_options(p, rec["options"])
        return got is not None and set(got) == set(rec["answer"])
    if rec.get("value") is not None and rec.get("tolerance") is not None:
        n = parse_number(p)
        return n is not None and abs(n - rec["value"]) <= rec["tolerance"]
    return None


def _metric_table(res: dict, blank: dict | None) -> str:
    rows = ["<tr><th>benchmark</th><th>metric</th><th class=num>score</th><th class=num>95% CI</th>"
            "<th class=num>chance</th><th class=num>blank ECG</th><th class=num>n</th><th class=num>unparsed</th></tr>"]  # fmt: skip
    for name, r in res["results"].items():
        m = r.get("main_metric", "")
        lo, hi = r.get("ci95", (None, None))
        b = (blank or {}).get("results", {}).get(name, {}).get("value") if blank else None
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(m)}</td><td class=num><b>{_fmt(r.get('value'))}</b></td>"
            f"<td class=num>{_fmt(lo)} – {_fmt(hi)}</td><td class=num>{_fmt(r.get('chance'))}</td>"
            f"<td class=num>{_fmt(b)}</td><td class=num>{r.get('n', 0)}</td><td class=num>{_fmt(r.get('unparsed_rate'))}</td></tr>"
        )  # fmt: skip
    return "<table>" + "".join(rows) + "</table>"


def _label_bars(per_label: dict) -> str:
    """AUC/F1 bars for the labels present in the split; the absent ones are listed under them."""
    import matplotlib.pyplot as plt

    absent = [n for n, v in per_label.items() if "auc" not in v]
    per_label = {n: v for n, v in per_label.items() if "auc" in v}
    note = (f"<p class=muted>not scored (one class only in this split): {html.escape(', '.join(absent))}</p>"
            if absent else "")  # fmt: skip
    if not per_label:
        return note
    names = list(per_label)
    f1 = [per_label[n].get("f1", 0.0) for n in names]
    auc = [per_label[n].get("auc", np.nan) for n in names]
    fig, ax = plt.subplots(figsize=(9, 0.25 * len(names) + 1))
    y = np.arange(len(names))
    ax.barh(y - 0.2, auc, 0.4, label="AUC", color="#4c78a8")
    ax.barh(y + 0.2, f1, 0.4, label="F1", color="#f58518")
    ax.set_yticks(y, [f"{n} (n+={per_label[n].get('support', 0)})" for n in names], fontsize=7)
    ax.axvline(0.5, color="#999", lw=0.8, ls="--")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    return f"<img class=plot src='{_png(fig)}' alt='per-label AUC and F1'>" + note


def _confusion(c: dict, title: str) -> str:
    import matplotlib.pyplot as plt

    m = np.array(c["matrix"])
    labels = [x if len(x) < 28 else x[:26] + "…" for x in c["labels"]]
    fig, ax = plt.subplots(figsize=(0.5 * len(labels) + 3, 0.45 * len(labels) + 2))
    ax.imshow(m, cmap="Blues")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if m[i, j] > m.max() / 2 else "black")  # fmt: skip
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel(f"predicted ({c.get('from', '')})")
    ax.set_ylabel("gold")
    ax.set_title(title)
    return f"<img class=plot src='{_png(fig)}' alt='confusion matrix {html.escape(title)}'>"


MISREAD_FEATURES = (("hr_bpm", "rate (bpm)"), ("rr_sd_ms", "RR SD (ms)"), ("pr_ms", "PR (ms)"),
                    ("qrs_ms", "QRS (ms)"), ("qt_ms", "QT (ms)"))  # fmt: skip


def misreads(recs: list[dict]) -> dict[str, list[dict]]:
    """Per benchmark, the single-answer option questions answered wrong (the option with the
    highest log-likelihood): record ids, gold, pick and the record's measurements, ordered by
    gold answer, answer, then rate."""
    out: dict[str, list[dict]] = {}
    for r in recs:
        ll, opts, ans = r.get("loglik"), r.get("options"), r.get("answer")
        if not ll or not opts or not isinstance(ans, list) or len(ans) != 1:
            continue
        pick = opts[int(np.argmax(ll))]
        if pick == ans[0]:
            continue
        try:
            feats = json.loads(r.get("features") or "{}")
        except (TypeError, json.JSONDecodeError):
            feats = {}
        out.setdefault(r["benchmark"], []).append(
            {
                "records": ", ".join(map(str, r.get("record_ids") or [])),
                "gold": ans[0],
                "pick": pick,
                **{k: feats.get(k) for k, _ in MISREAD_FEATURES},
            }  # fmt: skip
        )
    for rows in out.values():
        rows.sort(
            key=lambda x: (x["gold"], x["pick"], x["hr_bpm"] if x["hr_bpm"] is not None else -1)
        )
    return out


def _misread_table(name: str, rows: list[dict], limit: int = 60) -> str:
    head = "".join(
        f"<th>{h}</th>" for h in ("record", "gold", "answered", *(t for _, t in MISREAD_FEATURES))
    )
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(x[k]))}</td>" for k in ("records", "gold", "pick"))
        + "".join(f"<td class=num>{'–' if x[k] is None else f'{x[k]:.1f}'}</td>" for k, _ in MISREAD_FEATURES)
        + "</tr>"
        for x in rows[:limit]
    )  # fmt: skip
    more = f"<p class=muted>{len(rows) - limit} more not shown</p>" if len(rows) > limit else ""
    return f"<h3>{html.escape(name)}: {len(rows)} misread</h3><table><tr>{head}</tr>{body}</table>{more}"


def _grouped(res: dict, blank_res: dict | None) -> list[str]:
    """Bars per group for every benchmark whose YAML names `groups` (question type, attribute...):
    each `by_<group>` table of its results, the headline metric where the table has it."""
    out = []
    for name, v in res["results"].items():
        groups = res.get("benchmarks", {}).get(name, {}).get("groups") or []
        for key, by in v.items():
            if not (groups and key.startswith("by_") and isinstance(by, dict) and len(by) > 1):
                continue
            first = next(iter(by.values()))
            if not isinstance(first, dict):
                continue
            metric = (
                v.get("main_metric")
                if v.get("main_metric") in first
                else next((m for m in first if m != "n"), None)
            )
            if metric is None:
                continue
            label = " / ".join(groups) if key == "by_group" else key[3:].replace("_", " ")
            bb = (blank_res or {}).get("results", {}).get(name, {}).get(key)
            out.append(_group_bars(by, metric, f"{name}: {metric} by {label}", bb))
    return out


def _group_bars(by: dict, metric: str, title: str, blank_by: dict | None) -> str:
    import matplotlib.pyplot as plt

    names = list(by)
    v = [by[n][metric] for n in names]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(names) + 1))
    y = np.arange(len(names))
    ax.barh(y, v, 0.4 if blank_by else 0.7, label="model", color="#4c78a8")
    if blank_by:
        ax.barh(
            y + 0.4,
            [blank_by.get(n, {}).get(metric, 0) for n in names],
            0.4,
            label="blank ECG",
            color="#bbb",
        )
        ax.legend(loc="lower right")
    ax.set_yticks(y, [f"{n} (n={by[n]['n']})" for n in names], fontsize=8)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_title(title)
    return f"<img class=plot src='{_png(fig)}' alt='{html.escape(title)}'>"


def _sweep_plot(sweep: dict) -> str:
    import matplotlib.pyplot as plt

    settings = sweep["settings"]
    ref = settings.get("none=0", {})
    kinds = sorted({k.split("=")[0] for k in settings} - {"none"})
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        pts = sorted(
            (float(k.split("=")[1]), v) for k, v in settings.items() if k.startswith(kind + "=")
        )
        for b in ref:
            xs = [0.0 if kind != "leads" else 12.0] + [p[0] for p in pts]
            ys = [ref[b]] + [p[1].get(b, np.nan) for p in pts]
            order = np.argsort(xs)
            ax.plot(np.array(xs)[order], np.array(ys)[order], marker="o", label=b)
        ax.set_xlabel(f"{kind} ({sweep.get('units', {}).get(kind, '')})")
        if kind == "leads":
            ax.invert_xaxis()
        ax.set_ylim(0, 1)
        ax.set_title(kind)
    axes[0][0].set_ylabel("headline metric")
    axes[0][-1].legend(fontsize=7)
    return f"<img class=plot src='{_png(fig)}' alt='robustness sweeps'>"


def _thumb(image) -> str:
    from .data.dataset import load_image

    im = load_image(image).convert("RGB")
    im.thumbnail((640, 640))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _gallery(recs: list[dict], data: str | Path | None, n: int, seed: int = 0) -> str:
    pages: dict[str, Any] = {}
    if data is not None and (Path(data) / "records").exists():
        from datasets import load_from_disk

        records = load_from_disk(str(Path(data) / "records"))
        if "image" in records.column_names:
            want = {r["record_ids"][0] for r in recs if r.get("record_ids")}
            ids = records["record_id"]
            for i, rid in enumerate(ids):
                if rid in want:
                    pages[rid] = records[i]["image"]
    rng = np.random.default_rng(seed)
    by_bench: dict[str, list[dict]] = {}
    for r in recs:
        by_bench.setdefault(r["benchmark"], []).append(r)
    picked: list[dict] = []
    per = max(1, n // max(1, len(by_bench)))
    for rs in by_bench.values():
        picked += [rs[i] for i in sorted(rng.choice(len(rs), min(per, len(rs)), replace=False))]
    cards = []
    for r in picked[:n]:
        ok = correct(r)
        mark = (
            ""
            if ok is None
            else ("<span class=ok>✓ right</span>" if ok else "<span class=bad>✗ wrong</span>")
        )
        rid = (r.get("record_ids") or [None])[0]
        img = (
            f"<img src='{_thumb(pages[rid])}' alt='ECG {html.escape(str(rid))}'>"
            if rid in pages
            else ""
        )
        pred = r.get("prediction")
        if r.get("loglik"):
            pred = f"{r['options'][int(np.argmax(r['loglik']))]} (by likelihood); generated: {pred}"
        for key, name in (("label_scores_list", "next in list"), ("label_scores", "P(yes)")):
            if r.get(key):
                top = sorted(r[key].items(), key=lambda kv: -kv[1])[:3]
                pred = f"{pred}; top {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in top)
        cards.append(
            f"<div class=card>{img}<p class=muted>{html.escape(r['benchmark'])} · {html.escape(r['id'])} {mark}</p>"
            f"<p><b>Q:</b> {html.escape(r.get('question') or '')}</p><p><b>gold:</b> {html.escape(', '.join(map(str, r['answer'])))}</p>"
            f"<p><b>model:</b> {html.escape(str(pred))}</p></div>"
        )  # fmt: skip
    return "<div class=gallery>" + "".join(cards) + "</div>"


def write_report(eval_dir: str | Path, out: str | Path | None = None, blank: str | Path | None = None,
                 sweep: str | Path | None = None, data: str | Path | None = None, examples: int = 12,
                 title: str = "ecgllm evaluation") -> Path:  # fmt: skip
    """Build report.html from an eval folder (results.json + samples.jsonl); optional blank-ECG
    eval folder, sweep folder (sweep.json) and dataset folder (for the ECG pages)."""
    eval_dir = Path(eval_dir)
    res = json.loads((eval_dir / "results.json").read_text())
    blank_res = json.loads((Path(blank) / "results.json").read_text()) if blank else None
    recs = [
        json.loads(x) for x in (eval_dir / "samples.jsonl").read_text().splitlines() if x.strip()
    ]
    recs = [r for r in recs if r["benchmark"] in res["results"]]
    data = data or res.get("data", {}).get("path")
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p class=muted>model {html.escape(str(res['model'].get('path')))} · data {html.escape(str(res['data']['path']))} "
             f"({res['config']['split']} split) · greedy decoding, seed {res['config']['seed']} · commit {html.escape(str(res.get('git_commit')))}</p>",
             "<h2>Scores</h2>", _metric_table(res, blank_res),
             "<p class=muted>chance: the score of a uniformly random option, of an uninformative score (AUC 0.5), or of "
             "always giving the most frequent training answer, as each benchmark's file says; blank ECG: the same model "
             "with the ECG signal zeroed and the page blanked.</p>"]  # fmt: skip
    results = res["results"]
    if results.get("detect", {}).get("per_label"):
        parts += ["<h2>Detection per label</h2>", _label_bars(results["detect"]["per_label"])]
    conf = [(k, v["confusion"]) for k, v in results.items() if v.get("confusion")]
    if conf:
        parts.append("<h2>Confusion matrices</h2>")
        parts += [_confusion(c, k) for k, c in conf]
    grouped = _grouped(res, blank_res)
    if grouped:
        parts += ["<h2>By group</h2>", *grouped]
    if sweep and (Path(sweep) / "sweep.json").exists():
        parts += [
            "<h2>Robustness</h2>",
            _sweep_plot(json.loads((Path(sweep) / "sweep.json").read_text())),
        ]
    wrong = misreads(recs)
    if wrong:
        parts.append("<h2>Misread records</h2>")
        parts += [_misread_table(k, v) for k, v in sorted(wrong.items())]
    parts += ["<h2>Examples</h2>", _gallery(recs, data, examples)]
    page = ("<!doctype html><html lang=en><head><meta charset=utf-8><title>" + html.escape(title) +
            f"</title><style>{CSS}</style></head><body>" + "\n".join(parts) + "</body></html>")  # fmt: skip
    out = Path(out) if out else eval_dir / "report.html"
    write_text(out, page)
    return out


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")  # fmt: skip


def find_chromium() -> str | None:
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if p := shutil.which(name):
            return p
    return None


def screenshot(page: str | Path, png: str | Path, width: int = 1200, height: int = 3000,
               browser: str | None = None, timeout: float = 120) -> Path:  # fmt: skip
    """Render a page in headless Chromium and save a PNG (to check a report the way a reader
    sees it). The background-networking flags keep Chromium off the network."""
    import subprocess
    import tempfile

    browser = browser or find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found (Debian: apt-get install chromium)")
    png = Path(png).resolve()
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={png}", Path(page).resolve().as_uri()]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0 or not png.exists():
        raise RuntimeError(f"chromium failed ({r.returncode}): {r.stderr[-1000:]}")
    return png
