"""ECG-QA-style questions (verify / choose / query) about one record or a pair of records.

Official ECG-QA wordings where we have them (the real sample in shared/data: templates 26, 27,
28, 68, 69, 70, used with their official ids); the other question kinds follow ECG-QA's question
types, attributes and answer vocabulary with our own wordings, under ids from 1001."""

from __future__ import annotations

import numpy as np

from ...signal.record import STANDARD_12
from ...text.vocab import (
    NOISE_KINDS,
    NUMERIC_FEATURES,
    codes_in_set,
    label_set,
    numeric_range,
    scp_name,
    statements,
)
from .common import (
    VERIFY,
    YES_NO,
    RecordInfo,
    TaskFamily,
    join_answer,
    pick,
    question_text,
    sample,
)


def scp_answer(rec: RecordInfo, code: str) -> str:
    if code not in rec.labels:
        return "no"
    lik = rec.labels[code]
    diagnostic = (
        code in statements().table.index and statements().table.loc[code, "diagnostic"] == 1
    )
    return "not sure" if diagnostic and 0 < lik < 50 else "yes"


# the single-ECG scp_code choose question (a statement the record has against one it lacks)
CHOOSE = "Which symptom does this ECG show, {} or {}?"


def choosable(codes) -> list[str]:
    """The codes of `codes` that a choose or verify question can name: every SCP statement but
    NORM (ECG-QA's scp_code questions)."""
    allowed = set(label_set("all")) - {"NORM"}
    return [c for c in codes if c in allowed]


def _noise_attrs(rec: RecordInfo) -> dict[str, list[str]]:
    return {NOISE_KINDS[k]: v for k, v in rec.meta.get("noise", {}).items() if v}


def verify_code(rec: RecordInfo, rng, counts: dict[str, int] | None = None) -> str:
    """The statement a record's scp_code verify question asks about: half of the time one the
    record has, otherwise one it lacks. With `counts` (how many of the build's records have each
    statement) the absent one is drawn in proportion to that count and only among statements some
    record has: a statement is then asked about with "no" about as often as with "yes" (drawn
    uniformly, "no" went to rare statements and "yes" to common ones, and the question alone
    answered nine in ten). balance_verify() then evens each question's answers exactly."""
    diag = choosable(label_set("all"))
    present = choosable(rec.labels)
    if counts is None:
        return pick(rng, present) if present and rng.random() < 0.5 else pick(rng, diag)
    absent = [c for c in diag if c not in rec.labels and counts.get(c, 0) > 0]
    if present and (not absent or rng.random() < 0.5):
        return pick(rng, present)
    return _by_count(absent, counts, rng) if absent else pick(rng, diag)


def _by_count(codes: list[str], counts: dict[str, int], rng) -> str:
    """One of `codes`, drawn in proportion to how many of the build's records have it."""
    w = np.array([counts[c] for c in codes], dtype=float)
    return codes[int(rng.choice(len(codes), p=w / w.sum()))]


def balance_verify(samples: list[dict], seed: int = 0) -> tuple[list[dict], int]:
    """Verify questions (ECG-QA's, and the verify family's) evened out per split and question: of
    each (task, split, question text), as many "yes" as "no" answers are kept (the excess of the
    commoner one dropped at random, seeded per task; "not sure" kept), so that no verify question
    can be answered without the ECG (the real ECG-QA templates are about balanced; without this,
    the simulated verify questions were answered from the question alone nine times in ten).
    Returns the kept samples, in order, and the number dropped."""
    groups: dict[tuple[str, str, str], dict[str, list[int]]] = {}
    for i, s in enumerate(samples):
        if (
            s["task"] in ("ecgqa", "verify")
            and s["question_type"].endswith("-verify")
            and s["answer"] in (["yes"], ["no"])
        ):
            key = (s["task"], s["split"], question_text(s))
            groups.setdefault(key, {"yes": [], "no": []})[s["answer"][0]].append(i)
    # one generator per task: the verify family's groups leave ECG-QA's draws as they were
    rngs = {"ecgqa": np.random.default_rng([seed, 11]), "verify": np.random.default_rng([seed, 12])}
    drop: set[int] = set()
    for key in sorted(groups):
        yes, no = groups[key]["yes"], groups[key]["no"]
        k = min(len(yes), len(no))
        for idx in (yes, no):
            if len(idx) > k:
                drop.update(int(j) for j in rngs[key[0]].permutation(idx)[k:])
    return [s for i, s in enumerate(samples) if i not in drop], len(drop)


def ecgqa_single(
    rec: RecordInfo, rng, modalities, counts: dict[str, int] | None = None
) -> list[dict]:
    """A record's single-ECG questions. `counts`: how many of the build's records have each
    statement (verify_code); None draws the verify question's absent statement uniformly."""
    out: list[dict] = []
    mk = lambda q, a, opts, tid, qt, at, sfx: sample([rec], "ecgqa", q, join_answer(a), modalities, answer=a,  # noqa: E731
                                                     options=opts, template_id=tid, question_type=qt,
                                                     attribute_type=at, suffix=f"-{sfx}")  # fmt: skip
    # scp_code verify
    code = verify_code(rec, rng, counts)
    out.append(mk(VERIFY.format(label=scp_name(code)), [scp_answer(rec, code)],
                  ["no", "not sure", "yes"], 1001, "single-verify", "scp_code", "v-scp"))  # fmt: skip
    # scp_code query over a statement group
    group = pick(rng, ["diagnostic", "form", "rhythm"])
    vocab = [scp_name(c) for c in label_set(group)]
    ans = [scp_name(c) for c in codes_in_set(rec.labels, group)] or ["none"]
    what = {
        "diagnostic": "diagnostic symptoms",
        "form": "form-related symptoms",
        "rhythm": "rhythm",
    }[group]
    out.append(
        mk(
            f"What {what} does this ECG show?",
            ans,
            [*vocab, "none"],
            1002,
            "single-query",
            "scp_code",
            "q-scp",
        )
    )
    # scp_code choose between a present and an absent statement; with `counts` the absent one is
    # drawn in proportion to how many records have it (as verify_code's): drawn uniformly, it was
    # mostly a rare statement, and "the commoner of the two" answered 90% of the questions
    # without the ECG (scoring.question_prior)
    diag = choosable(label_set("all"))
    present = choosable(rec.labels)
    lacking = [c for c in diag if c not in rec.labels]
    seen = [c for c in lacking if counts and counts.get(c, 0) > 0]
    if present:
        a = pick(rng, present)
        b = _by_count(seen, counts, rng) if seen and counts else pick(rng, lacking)
        pair = [scp_name(a), scp_name(b)] if rng.random() < 0.5 else [scp_name(b), scp_name(a)]
        out.append(mk(CHOOSE.format(*pair), [scp_name(a)],
                      [*pair, "none"], 1003, "single-choose", "scp_code", "c-scp"))  # fmt: skip
    # noise (official wordings 26-28 when the source has noise fields); the kind and the lead are
    # one the record has half of the time when it has any, so that yes is not rare
    noise = _noise_attrs(rec)
    if rec.meta.get("has_noise_fields"):
        leads = list(STANDARD_12)
        kind = (
            pick(rng, sorted(noise))
            if noise and rng.random() < 0.5
            else pick(rng, list(NOISE_KINDS.values()))
        )
        roll = rng.random()
        if roll < 0.4:
            out.append(mk(f"Does this ECG show {kind}?", ["yes" if kind in noise else "no"], YES_NO, 27,
                          "single-verify", "noise", "v-noise"))  # fmt: skip
        elif roll < 0.7:
            lead = (
                pick(rng, noise[kind])
                if noise.get(kind) and rng.random() < 0.5
                else pick(rng, leads)
            )
            out.append(mk(f"Does this ECG show {kind} in lead {lead}?", ["yes" if lead in noise.get(kind, []) else "no"],
                          YES_NO, 26, "single-verify", "noise", "v-noise-lead"))  # fmt: skip
        else:
            noisy = sorted({ld for v in noise.values() for ld in v})
            lead = pick(rng, noisy) if noisy and rng.random() < 0.5 else pick(rng, leads)
            out.append(mk(f"Does this ECG show any kind of noises in lead {lead}?", ["yes" if lead in noisy else "no"],
                          YES_NO, 28, "single-verify", "noise", "v-noise-any"))  # fmt: skip
        kinds = sorted(noise) or ["none"]
        out.append(mk("What kind of noises does this ECG show?", kinds, [*sorted(NOISE_KINDS.values()), "none"],
                      1004, "single-query", "noise", "q-noise"))  # fmt: skip
    # infarction stage, extra systoles, axis
    if rec.meta.get("stages"):
        opts = ["early stage of myocardial infarction", "middle stage of myocardial infarction",
                "old stage of myocardial infarction", "unknown stage of myocardial infarction",
                "none of myocardial infarction"]  # fmt: skip
        out.append(mk("What stage of myocardial infarction does this ECG show?", rec.meta["stages"], opts, 1005,
                      "single-query", "stage_of_infarction", "q-stage"))  # fmt: skip
    if rec.meta.get("has_noise_fields") or rec.meta.get("extras") is not None:
        extras = rec.meta.get("extras") or ["none"]
        out.append(mk("What kind of extra systoles does this ECG show?", extras,
                      ["extrasystoles", "none", "supraventricular extrasystoles", "ventricular extrasystoles"],
                      1006, "single-query", "extra_systole", "q-extra"))  # fmt: skip
    if rec.meta.get("axis"):
        opts = [
            "extreme axis deviation",
            "left axis deviation",
            "normal heart axis",
            "right axis deviation",
        ]
        out.append(mk("What heart axis does this ECG show?", [rec.meta["axis"]], opts, 1007, "single-query",
                      "heart_axis", "q-axis"))  # fmt: skip
    # numeric feature ranges
    ranges = numeric_ranges(rec)
    if ranges:
        feat = pick(rng, sorted(ranges))
        opts = ["above the normal range", "below the normal range", "within the normal range"]
        out.append(mk(f"What range is the {feat} of this ECG in?", [ranges[feat]], opts, 1008, "single-query",
                      "numeric_feature", "q-num"))  # fmt: skip
        abnormal = sorted(f for f, r in ranges.items() if r != "within the normal range") or [
            "none"
        ]
        out.append(mk("What numeric features of this ECG are out of the normal range?", abnormal,
                      [*sorted(NUMERIC_FEATURES), "none"], 1009, "single-query", "numeric_feature", "q-num-abn"))  # fmt: skip
    return out


def numeric_ranges(rec: RecordInfo) -> dict[str, str]:
    s = rec.features.get("summary", {})
    out = {}
    for feat, (key, _, _) in NUMERIC_FEATURES.items():
        r = numeric_range(feat, s.get(key), rec.meta.get("sex"))
        if r:
            out[feat] = r
    return out


def ecgqa_comparison(a: RecordInfo, b: RecordInfo, kind: str, rng, modalities) -> list[dict]:
    """Questions about two ECGs (kind: 'consecutive' = same patient, 'irrelevant' = unrelated)."""
    qt = f"comparison_{kind}"
    out: list[dict] = []
    ra, rb = numeric_ranges(a), numeric_ranges(b)
    feats = sorted(set(ra) & set(rb))
    if feats:
        abn = lambda r, f: r[f] != "within the normal range"  # noqa: E731
        official = [
            (68, "What numeric features of the second ECG now have become normal as compared to the first ECG?",
             [f for f in feats if abn(ra, f) and not abn(rb, f)]),
            (69, "What numeric features of the second ECG are now considered abnormal values as compared to the first ECG?",
             [f for f in feats if not abn(ra, f) and abn(rb, f)]),
            (70, "What numeric features of the second ECG are still abnormal as compared to the first ECG?",
             [f for f in feats if abn(ra, f) and abn(rb, f)]),
        ]  # fmt: skip
        tid, q, ans = official[int(rng.integers(3))]
        # the official templates are comparison_irrelevant; for consecutive pairs we use our ids
        tid = tid if kind == "irrelevant" else tid + 1000
        ans = ans or ["none"]
        out.append(sample([a, b], "ecgqa", q, join_answer(ans), modalities, answer=ans,
                          options=[*sorted(NUMERIC_FEATURES), "none"], template_id=tid, question_type=f"{qt}-query",
                          attribute_type="numeric_feature", suffix="-cmp-num"))  # fmt: skip
    codes = sorted(set(a.labels) | set(b.labels))
    if codes:
        # a statement new in the second ECG half of the time when there is one (else "yes" is rare)
        newly = sorted(set(b.labels) - set(a.labels))
        code = pick(rng, newly) if newly and rng.random() < 0.5 else pick(rng, codes)
        ans = "yes" if code in b.labels and code not in a.labels else "no"
        out.append(sample([a, b], "ecgqa", f"Does the second ECG newly show {scp_name(code)} as compared to the first ECG?",
                          ans, modalities, answer=[ans], options=YES_NO, template_id=1010,
                          question_type=f"{qt}-verify", attribute_type="scp_code", suffix="-cmp-v"))  # fmt: skip
        new = sorted(
            scp_name(c) for c in b.labels if c not in a.labels and c in statements().table.index
        ) or ["none"]
        vocab = sorted({scp_name(c) for c in label_set("all")}) + ["none"]
        out.append(sample([a, b], "ecgqa", "What symptoms of the second ECG are newly detected as compared to the first ECG?",
                          join_answer(new), modalities, answer=new, options=vocab, template_id=1011,
                          question_type=f"{qt}-query", attribute_type="scp_code", suffix="-cmp-q"))  # fmt: skip
    return out


FAMILY = TaskFamily("ecgqa", lambda rec, rng, ctx: ecgqa_single(rec, rng, ctx.modalities, dict(ctx.label_counts)), "qa", ("options", "question_type", "attribute_type"),
                    ("ecgqa",), pairs=lambda a, b, kind, rng, ctx: ecgqa_comparison(a, b, kind, rng, ctx.modalities))  # fmt: skip
