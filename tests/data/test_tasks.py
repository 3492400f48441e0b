"""Task families as registered units, and the evidence table of grounded interpretation."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ecgllm.benchmarks import available, load_benchmark
from ecgllm.data import BuildConfig, build_dataset
from ecgllm.data import tasks as T
from ecgllm.data.dataset import EcgInstructionDataset
from ecgllm.signal.synthetic_db import build_database
from ecgllm.text.vocab import statements


def test_registry_order_and_defaults():
    # the generation order is part of the output (one random generator per record, drawn in turn)
    assert list(T.FAMILIES) == ["report", "detect", "mcq", "ecgqa", "measure", "ground", "rhythm",
                                "findings", "multiturn", "verify"]  # fmt: skip
    assert T.TASKS == ("report", "detect", "mcq", "ecgqa", "measure", "ground", "multiturn")
    assert T.OPTIONAL_TASKS == ("verify",)
    assert T.CHECK_TASKS == ("rhythm", "findings")
    with pytest.raises(ValueError, match="registered already"):
        T.register(T.FAMILIES["mcq"])


def test_every_family_names_benchmarks_that_score_it():
    for name, fam in T.FAMILIES.items():
        for b in fam.benchmarks:
            assert b in available() and load_benchmark(b).task == name, (name, b)
    scored = {b for f in T.FAMILIES.values() for b in f.benchmarks}
    assert scored == set(available())  # no shipped benchmark without its family


def _rec(**kw) -> T.RecordInfo:
    base = dict(record_id="1", source="synthetic", patient_id="p1", split="train",
                labels={"SR": 0.0, "NORM": 100.0},
                features={"summary": {"hr_bpm": 72.0, "pr_ms": 160.0, "qrs_ms": 90.0, "qt_ms": 380.0,
                                      "qtc_ms": 410.0, "axis_deg": 40.0, "rr_sd_ms": 20.0}})  # fmt: skip
    base.update(kw)
    return T.RecordInfo(**base)


def test_declared_fields_are_filled():
    rng = np.random.default_rng(0)
    ctx = T.TaskContext(("signal",))
    rec = _rec()
    for name, fam in T.FAMILIES.items():
        if fam.conversation:
            continue
        for s in fam.generate(rec, rng, ctx):
            assert s["task"] == name and fam.missing(s) == [], (name, fam.missing(s))
    assert T.FAMILIES["measure"].missing({"value": None, "unit": "ms", "tolerance": 5.0, "attribute_type": "x"}) == ["value"]  # fmt: skip


def test_a_registered_family_is_built_and_checked(tmp_path):
    def family(name: str, fields: tuple[str, ...]) -> T.TaskFamily:
        def gen(rec, rng, ctx):
            q = f"Is the heart rate of this ECG above {int(rng.integers(60, 100))} bpm?"
            hr = rec.features.get("summary", {}).get("hr_bpm")
            ans = "yes" if hr is not None and hr > 80 else "no"
            return [T.sample([rec], name, q, ans, ctx.modalities, answer=[ans], options=T.YES_NO)]

        return T.TaskFamily(name, gen, kind="choice", fields=fields)

    build_database(tmp_path / "sim", n=8, seed=1)

    def build(out: str, tasks: tuple[str, ...]) -> dict:
        cfg = BuildConfig(source="synthetic", root=str(tmp_path / "sim"), out=str(tmp_path / out),
                          tasks=tasks, modalities=("signal",))  # fmt: skip
        return build_dataset(cfg, progress=False)

    try:
        # its samples leave out a field it declares (attribute_type): each one counted as invalid
        T.register(family("rate_strict", ("options", "attribute_type")))
        r = build("a", ("report", "rate_strict"))
        assert r["samples_by_task"] == {"report": 8} and sum(r["invalid_samples"].values()) == 8
        T.register(family("rate_check", ("options",)))
        r = build("b", ("rate_check",))
        assert r["samples"] == 8 and not r["invalid_samples"]
        rows = EcgInstructionDataset(str(tmp_path / "b"), "train").samples
        assert set(rows["task"]) == {"rate_check"} and set(rows["options"][0]) == {"no", "yes"}
    finally:
        T.FAMILIES.pop("rate_strict", None)
        T.FAMILIES.pop("rate_check", None)


def test_evidence_table_is_complete_and_well_formed():
    territories, rules = T.evidence_rules()
    known = set(statements().table.index)
    assert set(rules) <= known  # every code of the table is an SCP statement
    placeholders = re.compile(r"\{(\w+)")
    for code, rule in rules.items():
        for key in placeholders.findall(rule["text"]):
            assert key in ("name", "leads") or key in rule.get("measurements", []), (code, key)
        spec = rule.get("leads")
        if isinstance(spec, dict):
            assert spec["from"] == "all but aVR" or set(spec["from"]) <= set(territories)
            assert ("{leads}" in rule["text"]) and spec["where"][1] in ("<", ">")
    # every finding the simulator can produce has evidence
    for code in ("SR", "SBRAD", "STACH", "SARRH", "AFIB", "AFLT", "1AVB", "CLBBB", "CRBBB", "IRBBB",
                 "LAFB", "LVH", "LVOLT", "LNGQT", "IMI", "ASMI", "AMI", "STD_", "NDT", "PVC", "PAC", "NORM"):  # fmt: skip
        assert code in rules, code


def test_evidence_sentences():
    s = {"hr_bpm": 71.6, "rr_sd_ms": 140.2, "pr_ms": 236.0, "sokolow_lyon_mv": 4.04}
    per_lead = {"II": {"q_mv": -0.2}, "III": {"q_mv": -0.05}, "aVF": {"q_mv": -0.3}, "V1": {"t_mv": -0.1},
                "aVR": {"t_mv": -0.3}, "V5": {"t_mv": 0.3}}  # fmt: skip
    text, ev = T.evidence_for("SARRH", s, per_lead)
    assert text == "sinus arrhythmia: P waves before every QRS, rate 72 bpm, RR variation 140 ms"
    assert ev == {
        "finding": "SARRH",
        "measurements": {"hr_bpm": 71.6, "rr_sd_ms": 140.2},
        "leads": [],
    }
    text, ev = T.evidence_for("LVH", s, per_lead)
    assert text.endswith("SV1 + RV5/6 = 4.0 mV (> 3.5 mV)") and ev["leads"] == ["V1", "V5", "V6"]
    text, ev = T.evidence_for("IMI", s, per_lead)  # the inferior leads with Q waves
    assert text.endswith("in II, aVF") and ev["leads"] == ["II", "aVF"]
    text, ev = T.evidence_for("IMI", s, {})  # none measured: the territory
    assert text.endswith("in II, III, aVF") and ev["leads"] == ["II", "III", "aVF"]
    text, ev = T.evidence_for("NDT", s, per_lead)  # every lead but aVR
    # (a lead without a T amplitude counts as flat, as the table says: missing = 0)
    assert text.endswith("T waves in II, III, aVF, V1") and ev["leads"] == [
        "II",
        "III",
        "aVF",
        "V1",
    ]
    text, ev = T.evidence_for("STD_", s, per_lead)  # none: a phrase, no leads
    assert text.endswith("ST depression in several leads") and ev["leads"] == []
    text, _ = T.evidence_for("LNGQT", s, per_lead)
    assert text == "long qt-interval: QT not measurable, QTc not measurable"
    assert T.evidence_for("1AVB", s, per_lead)[0].endswith(
        "PR 236 ms (> 200 ms) with every P wave conducted"
    )
    assert T.evidence_for("XYZ", s, per_lead) is None


def _verify(rec_id: str, split: str, code: str, answer: str) -> dict:
    return T.sample([_rec(record_id=rec_id, split=split)], "ecgqa", T.VERIFY.format(label=code), answer,
                    ("signal",), answer=[answer], options=T.YES_NO, question_type="single-verify",
                    attribute_type="scp_code", suffix=f"-{code}")  # fmt: skip


def test_verify_answers_are_evened_per_split_and_question():
    # LVH: 3 yes / 1 no in train, 1 no in test; CLBBB: only no; "not sure" is kept
    rows = [_verify("1", "train", "LVH", "yes"), _verify("2", "train", "LVH", "yes"),
            _verify("3", "train", "LVH", "yes"), _verify("4", "train", "LVH", "no"),
            _verify("5", "test", "LVH", "no"), _verify("6", "train", "CLBBB", "no"),
            _verify("7", "train", "CLBBB", "not sure"),
            T.sample([_rec()], "mcq", "q", "A. x", ("signal",), answer=["x"])]  # fmt: skip
    kept, dropped = T.balance_verify(rows, seed=0)
    assert dropped == 4 and kept == T.balance_verify(rows, seed=0)[0]  # seeded
    got = [(s["split"], s["messages"][0]["content"][-1]["text"], s["answer"][0]) for s in kept]
    assert sorted((sp, a) for sp, q, a in got if "LVH" in q) == [("train", "no"), ("train", "yes")]
    assert [s["task"] for s in kept].count("mcq") == 1 and any(
        s["answer"] == ["not sure"] for s in kept
    )
    assert [s["id"] for s in kept] == [s["id"] for s in rows if s in kept]  # order kept


def test_verify_code_asks_present_and_common_absent_statements():
    rng = np.random.default_rng(0)
    rec = _rec(labels={"SR": 0.0, "LVH": 100.0})
    counts = {"SR": 60, "LVH": 10, "CLBBB": 30, "IMI": 10}
    drawn = [T.verify_code(rec, rng, counts) for _ in range(2000)]
    share = {c: drawn.count(c) / len(drawn) for c in set(drawn)}
    # half present (SR or LVH), half absent in proportion to the counts (CLBBB 3 : IMI 1); never a
    # statement no record has
    assert set(share) == {"SR", "LVH", "CLBBB", "IMI"}
    assert abs(share["SR"] + share["LVH"] - 0.5) < 0.04
    assert abs(share["CLBBB"] / share["IMI"] - 3.0) < 0.6
    # without counts: the old draw (absent statements uniform over the vocabulary)
    assert len({T.verify_code(rec, rng) for _ in range(300)}) > 10


def test_choose_asks_a_present_and_a_common_absent_statement():
    """The choose question's absent statement is drawn in proportion to the counts, as verify's:
    drawn uniformly it was mostly a rare one, and the commoner of the two answered 90% (on the
    demo build; 55% now)."""
    from collections import Counter

    from ecgllm.data.tasks.ecgqa import ecgqa_single
    from ecgllm.text.vocab import scp_name

    rng = np.random.default_rng(0)
    rec = _rec(labels={"SR": 0.0, "LVH": 100.0})
    counts = {"SR": 60, "LVH": 10, "CLBBB": 30, "IMI": 10}
    absent: Counter = Counter()
    for _ in range(400):
        for s in ecgqa_single(rec, rng, ("signal",), counts):
            if s["question_type"] == "single-choose":
                assert s["answer"][0] in (scp_name("SR"), scp_name("LVH"))
                absent.update(o for o in s["options"] if o not in s["answer"] and o != "none")
    assert set(absent) == {scp_name("CLBBB"), scp_name("IMI")}
    assert abs(absent[scp_name("CLBBB")] / absent[scp_name("IMI")] - 3.0) < 0.6
    # without counts: uniform over the statements the record lacks
    drawn = {o for _ in range(200) for s in ecgqa_single(rec, rng, ("signal",)) if s["question_type"] == "single-choose"
             for o in s["options"]}  # fmt: skip
    assert len(drawn) > 10


def test_built_verify_questions_cannot_be_answered_from_the_question(instruct):
    from collections import Counter, defaultdict

    from datasets import load_from_disk

    answers: dict = defaultdict(Counter)
    for s in load_from_disk(str(instruct / "samples"))["train"]:
        if (
            s["task"] == "ecgqa"
            and s["question_type"].endswith("-verify")
            and s["answer"] != ["not sure"]
        ):
            answers[s["messages"][0]["content"][-1]["text"]][s["answer"][0]] += 1
    assert answers and all(c["yes"] == c["no"] for c in answers.values())
