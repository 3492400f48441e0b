"""data.curriculum: stages of task families, each for a share of the run's steps."""

from __future__ import annotations

import json

import pytest

from ecgllm.data.collator import curriculum_order, stage_steps
from ecgllm.train.config import ConfigError, load_config
from tests.train.test_recipe import BASE, _losses, _run

TASKS = ["report"] * 5 + ["rhythm"] * 7 + ["ecgqa"] * 30 + ["mcq"] * 3


def test_stage_steps_add_up_to_the_run():
    assert stage_steps([0.25, 0.25, 0.5], 8) == [2, 2, 4]
    assert stage_steps([1 / 3] * 3, 10) == [3, 4, 3]
    assert sum(stage_steps([0.1, 0.2, 0.7], 7)) == 7
    assert stage_steps([0.5, 0.5], 1) == [0, 1]


@pytest.mark.parametrize("lengths", [None, list(range(len(TASKS)))])
def test_each_stage_draws_only_its_families(lengths):
    stages = [(("report",), 3), (("rhythm", "mcq"), 2), (("report", "rhythm", "ecgqa", "mcq"), 4)]
    order = curriculum_order(TASKS, stages, per_step=4, seed=0, lengths=lengths, group=2)
    assert len(order) == 4 * (3 + 2 + 4)
    first, second, third = order[:12], order[12:20], order[20:]
    assert {TASKS[i] for i in first} == {"report"}
    # 5 report samples fill 12 places: every sample twice before any a third time
    assert max(first.count(i) for i in range(5)) - min(first.count(i) for i in range(5)) <= 1
    assert {TASKS[i] for i in second} <= {"rhythm", "mcq"} and len(set(second)) == 8
    assert len(set(third)) == 16  # a pool larger than its stage is cut, without repeats
    assert curriculum_order(TASKS, stages, 4, 0, lengths, 2) == order  # deterministic
    assert curriculum_order(TASKS, stages, 4, 1, lengths, 2) != order


def test_an_empty_stage_is_an_error():
    with pytest.raises(
        ValueError, match=r"curriculum stage 2: no training samples of \['ground'\]"
    ):
        curriculum_order(TASKS, [(("report",), 1), (("ground",), 1)], 4, 0)


def test_bad_curricula_are_config_errors():
    ok = load_config(
        None, ["data.curriculum=[{tasks: [report], share: 0.5}, {tasks: all, share: 0.5}]"]
    )
    assert ok.data.curriculum[1] == {"tasks": "all", "share": 0.5}
    for bad, msg in [
        ("[]", "must be a non-empty list"),
        ("[{tasks: [report]}]", "stage 1: share must be a fraction"),
        ("[{tasks: [reprot], share: 1}]", r"stage 1: unknown task families \['reprot'\]"),
        ("[{tasks: report, share: 1}]", "stage 1: tasks must be a list"),
        ("[{tasks: all, share: 1, steps: 3}]", "stage 1: expected"),
        ("[{tasks: all, share: 0.5}, {tasks: all, share: 0.4}]", "add up to 0.9, not 1"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            load_config(None, [f"data.curriculum={bad}"])


def test_staged_run_trains_resumes_exactly_and_dry_runs(instruct, tmp_path):
    stages = "data.curriculum=[{tasks: [report], share: 0.5}, {tasks: [rhythm, mcq], share: 0.5}]"
    out = tmp_path / "run"
    args = [f"data.path={instruct}", "train.max_steps=4", "train.save_steps=2", "train.save_total_limit=5",
            stages, *BASE]  # fmt: skip
    r = _run([f"output.dir={out}", *args])
    assert "trained 4 steps" in r.stdout
    import shutil

    again = tmp_path / "again"
    shutil.copytree(out, again)
    for p in ("checkpoint-000004", "final"):
        shutil.rmtree(again / p)
    _run([f"output.dir={again}", "train.resume_from_checkpoint=latest", *args])
    assert _losses(again, 4) == pytest.approx(_losses(out, 4), abs=1e-5)
    r = _run([f"output.dir={tmp_path / 'dry'}", "--dry-run", *args])
    d = json.loads(r.stdout[r.stdout.index("{\n") : r.stdout.rindex("}") + 1])
    assert d["curriculum"] == [
        {"tasks": ["report"], "steps": 2},
        {"tasks": ["rhythm", "mcq"], "steps": 2},
    ]
    assert d["steps_per_epoch"] == d["total_steps"] == 4
    with pytest.raises(AssertionError, match="curriculum stage 2: no training samples of"):
        _run([f"output.dir={tmp_path / 'bad'}", "--dry-run", f"data.path={instruct}", "train.max_steps=4",
              "data.tasks=[report]", stages, *BASE])  # fmt: skip
