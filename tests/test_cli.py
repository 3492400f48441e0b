"""Command lines derived from dataclasses (ecgllm.cli) and the one PageSpec."""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from ecgllm.cli import add_fields, describe, field_comments, field_values
from ecgllm.data import BuildConfig
from ecgllm.render import PageSpec
from ecgllm.render.store import RenderJob
from ecgllm.train.config import RecipeConfig

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Inner:
    depth: float = 1.5  # how deep


@dataclass
class Outer:
    name: str  # what it is called
    # the parts,
    # in order
    parts: tuple[str, ...] = ("a", "b")
    count: int | None = None  # how many
    loud: bool = False  # shout
    quiet: bool = True  # whisper
    tags: list[str] | None = None  # labels
    inner: Inner = field(default_factory=Inner)
    extra: dict = field(default_factory=dict)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    add_fields(ap, Outer, skip={"extra"}, choices={"parts": ("a", "b", "c")})
    return ap


def test_comments_are_the_help():
    c = field_comments(Outer)
    assert c["name"] == "what it is called" and c["parts"] == "the parts, in order"
    assert c["count"] == "how many" and c["inner"] == "" and c["extra"] == ""
    assert field_comments(Inner) == {"depth": "how deep"}


def test_options_defaults_and_round_trip():
    ap = _parser()
    args = ap.parse_args(["--name", "x"])
    assert Outer(**field_values(args, Outer, skip={"extra"})) == Outer(name="x")
    args = ap.parse_args(
        [
            "--name",
            "y",
            "--parts",
            "c,a",
            "--count",
            "3",
            "--loud",
            "--no-quiet",
            "--depth",
            "2",
            "--tags",
            "u,v",
        ]
    )
    got = Outer(**field_values(args, Outer, skip={"extra"}))
    assert got == Outer("y", ("c", "a"), 3, True, False, ["u", "v"], Inner(2.0))
    with pytest.raises(SystemExit):  # required field missing
        ap.parse_args([])
    with pytest.raises(SystemExit):  # an item outside the choices
        ap.parse_args(["--name", "x", "--parts", "a,z"])
    with pytest.raises(TypeError, match="extra"):  # a field with no command-line form
        add_fields(argparse.ArgumentParser(), Outer)
    text = ap.format_help()
    assert "how many (default: None)" in text and "inner (Inner)" in text


def test_describe_lists_every_recipe_key():
    text = describe(RecipeConfig)
    for key in (
        "model.ecg_weights",
        "data.max_per_task",
        "lora.r",
        "train.learning_rate",
        "hub.repo_id",
    ):
        assert f"  {key} (" in text
    assert "train.learning_rate (float, default 0.0002): peak learning rate" in text


def test_page_spec_checks_and_reads_builds():
    assert PageSpec() == PageSpec("3x4+II", "letter", 200.0, "red", None)
    for bad in (
        {"layout": "2x6"},
        {"paper": "a3"},
        {"style": "teal"},
        {"augment": "x"},
        {"dpi": 10},
    ):
        with pytest.raises(ValueError, match=f"page {next(iter(bad))}"):
            PageSpec(**bad)
    # a build's recorded config: nested (now) or flat (builds before PageSpec)
    nested = {"source": "ptbxl", "page": {"layout": "6x2", "dpi": 100.0}}
    assert PageSpec.from_mapping(nested) == PageSpec(layout="6x2", dpi=100.0)
    flat = {"source": "ptbxl", "layout": "12x1", "style": "bw", "seed": 3}
    assert PageSpec.from_mapping(flat) == PageSpec(layout="12x1", style="bw")
    assert PageSpec.from_mapping(None) == PageSpec()
    # a mapping where a spec is expected (as YAML or JSON give it)
    assert BuildConfig(source="ptbxl", root="r", out="o", page={"dpi": 100}).page == PageSpec(
        dpi=100
    )
    assert RenderJob(root="r", out="o", page={"layout": "6x2"}).page.layout == "6x2"
    with pytest.raises(ValueError, match="page style"):
        RenderJob(root="r", out="o", page={"style": "teal"})


def test_stamps_keep_their_pre_pagespec_form():
    """Builds and page folders stamped before PageSpec still match (no rebuild on upgrade)."""
    cfg = BuildConfig(source="synthetic", root="r", out="o", page=PageSpec(layout="6x2"))
    flat = asdict(cfg)
    for k in ("workers", "out", "strict"):
        flat.pop(k)
    flat.update(flat.pop("page"))
    assert "layout" in flat and "page" not in flat
    want = hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert cfg.fingerprint() == want
    job = RenderJob(root="r", out="o", page=PageSpec(augment="scan"))
    assert job.settings() == {"source": "ptbxl", "root": "r", "seed": 0, "options": {},
                              "layout": "3x4+II", "paper": "letter", "dpi": 200.0, "style": "red",
                              "augment": "scan"}  # fmt: skip


@pytest.mark.parametrize(
    "script,needles",
    [
        ("data_builders/build.py", ["--layout", "--chunk-size", "--comparisons-per-record", "page (PageSpec)"]),
        ("data_builders/render.py", ["--layout", "--dpi", "(default: ptbxl)"]),
        ("eval/run.py", ["--batch-size", "samples answered per forward pass (default: 8)"]),
        ("recipes/pretrain_ecg_encoder.py", ["--steps", "optimizer steps (default: 1000)"]),
        ("recipes/sft.py", ["config keys", "lora.r (int, default 16): LoRA rank"]),
        ("recipes/meta_train.py", ["--inner-steps", "gradient steps on the support set per episode (default: 1)",
                                   "--algorithm {fomaml,incontext,calibrated}", "--tune {fusion,fusion+lora}"]),
        ("data_builders/retrieval_index.py", ["--encoder", "the split indexed (default train)"]),
        ("data_builders/ecg_tokenizer.py", ["--vocab-size", "tokenized leads (default I,II,V2)"]),
        ("recipes/quickstart.py", ["--route {encoder,tokens}"]),
        ("recipes/grpo.py", ["--group-size", "completions sampled per prompt (G) (default: 4)",
                             "--resume-from-checkpoint"]),
        ("recipes/pretrain_ecg_encoder.py", ["--objective {supervised,contrastive,masked}", "--contrastive-loss"]),
        ("recipes/sweep.py", ["--arm NAME KEY=VALUE", "--baseline-eval", "paired bootstrap resamples"]),
    ],
)  # fmt: skip
def test_entry_point_help_lists_fields(script, needles):
    r = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    for n in needles:
        assert " ".join(n.split()) in text, (script, n)


def test_build_cli_rejects_bad_values(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "data_builders/build.py"), "--source", "synthetic",
                        "--root", str(tmp_path), "--out", str(tmp_path / "o"), "--workers", "0"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "workers and chunk_size must be >= 1" in r.stderr


def test_stamp_is_the_one_reuse_check(tmp_path):
    from ecgllm.atomic import Stamp

    s = Stamp(tmp_path / "x.stamp.json")
    assert s.read() is None and not s.matches({"a": 1})  # no stamp: nothing is reused
    s.write({"a": (1, 2), "p": tmp_path})  # tuples and paths as JSON
    assert s.matches({"a": [1, 2], "p": str(tmp_path)}) and not s.matches({"a": [1, 2]})
    s.write({"fingerprint": "abc", "config": {"workers": 2}})
    assert s.matches("abc", key="fingerprint") and not s.matches("abd", key="fingerprint")
    s.path.write_text('{"cut": ')  # a stamp a crash left cut matches nothing
    assert s.read() is None and not s.matches({"cut": 1})
    assert not list(tmp_path.glob("*.tmp*"))


def test_source_dir_pairs(tmp_path):
    from ecgllm.cli import source_dir_pairs

    assert source_dir_pairs([" ludb = a/b ", "challenge=c"]) == [
        ("ludb", "a/b"),
        ("challenge", "c"),
    ]
    for bad in ("ludb", "=x", "ludb="):
        with pytest.raises(ValueError, match="expected SOURCE=DIR"):
            source_dir_pairs([bad])
    with pytest.raises(ValueError, match="is not a folder"):
        source_dir_pairs([f"ludb={tmp_path / 'nope'}"], must_exist=True)
    assert source_dir_pairs([f"ludb={tmp_path}"], must_exist=True) == [("ludb", str(tmp_path))]
    for script in ("recipes/pretrain_ecg_encoder.py", "eval/zeroshot.py"):
        r = subprocess.run([sys.executable, str(ROOT / script), "--data", "d", "--out", "o", "--encoder", "e",
                            "--real", "ludb"], capture_output=True, text=True, timeout=120)  # fmt: skip
        assert r.returncode == 2 and "--real 'ludb': expected SOURCE=DIR" in r.stderr, (
            script,
            r.stderr[-500:],
        )
