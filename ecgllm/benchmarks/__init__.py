"""The benchmark registry: one YAML file per benchmark in this folder (lm-eval style).

    from ecgllm.benchmarks import load_benchmark, available
    b = load_benchmark("ecgqa")                # or a path to your own YAML
    b.select(samples)                          # indices of the samples it scores

A file says which samples a benchmark takes (`task`, optional `filter` on sample fields), how the
model answers (`methods`: generate = greedy text; loglik = the most likely option; yes_prob =
P(yes) per label; list_prob = p(label next | the greedy list before it) per label), how answers
are scored (`scorer`, a name in ecgllm.evaluation.SCORERS), the headline metric and whether
higher is better, how results are grouped, and how the chance level is computed (`chance`:
uniform_option, auc, train_majority), and whether to score the question-only prior too (`prior`:
the training split's most frequent answer to each question, scoring.question_prior). Unknown keys
are errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..yamlfile import read_mapping

HERE = Path(__file__).parent
# each method and the field it writes into a sample's record (evaluation.answer); a stored answer
# without one of its benchmark's fields is answered again
METHOD_FIELDS = {"generate": "prediction", "loglik": "loglik", "yes_prob": "label_scores",
                 "list_prob": "label_scores_list"}  # fmt: skip
METHODS = tuple(METHOD_FIELDS)
# headline metrics that only one method's answers give (Benchmark.without keeps that method)
METRIC_METHOD = {
    "macro_auc_list": "list_prob",
    "macro_auc": "yes_prob",
    "accuracy_loglik": "loglik",
}
CHANCE = ("uniform_option", "auc", "train_majority")


@dataclass(frozen=True)
class Benchmark:
    name: str
    task: str
    scorer: str
    metric: str
    description: str = ""
    methods: tuple[str, ...] = ("generate",)
    filter: dict[str, Any] = field(default_factory=dict)
    higher_is_better: bool = True
    groups: tuple[str, ...] = ()
    chance: str = "uniform_option"
    confusion: bool = False
    prior: bool = False
    max_new_tokens: int = 48
    source: str = ""

    @property
    def uses_train(self) -> bool:
        """Whether scoring reads the training split (a majority chance level or the prior)."""
        return self.chance == "train_majority" or self.prior

    def without(self, methods: Sequence[str]) -> Benchmark:
        """The benchmark answered without `methods` (a quicker run: e.g. P(yes) beside the list's
        AUC on a real backbone); an error if its headline metric needs one, or none would be left."""
        keep = tuple(m for m in self.methods if m not in methods)
        if keep == self.methods:
            return self
        need = METRIC_METHOD.get(self.metric)
        if not keep:
            raise ValueError(f"{self.name}: skipping {list(methods)} leaves none of its methods")
        if need is not None and need not in keep:
            raise ValueError(
                f"{self.name}: its headline {self.metric} needs method {need!r}; it cannot be skipped"
            )
        return replace(self, methods=keep)

    def matches(self, sample: dict) -> bool:
        if sample.get("task") != self.task:
            return False
        for k, v in self.filter.items():
            allowed = v if isinstance(v, list) else [v]
            if sample.get(k) not in allowed:
                return False
        return True

    def select(self, samples) -> list[int]:
        """Indices of the rows of a samples Dataset (or list of dicts) this benchmark scores."""
        cols = ["task", *self.filter]
        if hasattr(samples, "select_columns"):
            rows = samples.select_columns(cols).to_list()
        else:
            rows = [{c: s.get(c) for c in cols} for s in samples]
        return [i for i, r in enumerate(rows) if self.matches(r)]


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def load_benchmark(name_or_path: str | Path) -> Benchmark:
    """A shipped benchmark by name, or any YAML file of the same shape."""
    p = Path(name_or_path)
    if not p.suffix:
        p = HERE / f"{name_or_path}.yaml"
        if not p.exists():
            raise ValueError(f"unknown benchmark {name_or_path!r}; choose from {available()}")
    if not p.exists():
        raise FileNotFoundError(f"benchmark file {p} not found")
    raw = read_mapping(p, "a mapping of benchmark keys")
    known = {f.name for f in fields(Benchmark)} - {"source"}
    bad = sorted(set(raw) - known)
    if bad:
        raise ValueError(f"{p}: unknown key(s) {bad}; allowed: {sorted(known)}")
    missing = [k for k in ("name", "task", "scorer", "metric") if k not in raw]
    if missing:
        raise ValueError(f"{p}: missing key(s) {missing}")
    kinds = {"name": str, "task": str, "scorer": str, "metric": str, "description": str, "chance": str,
             "higher_is_better": bool, "confusion": bool, "prior": bool, "max_new_tokens": int, "methods": list,
             "groups": list, "filter": (dict, type(None))}  # fmt: skip
    for key, kind in kinds.items():
        v = raw.get(key)
        if key in raw and (not isinstance(v, kind) or (kind is int and isinstance(v, bool))):
            raise ValueError(
                f"{p}: {key} must be {getattr(kind, '__name__', 'a mapping')}, got {v!r}"
            )
    for key in ("methods", "groups"):
        if not all(isinstance(x, str) for x in raw.get(key, [])):
            raise ValueError(f"{p}: {key} must be a list of names, got {raw[key]!r}")
    if raw.get("max_new_tokens", 1) < 1:
        raise ValueError(f"{p}: max_new_tokens must be >= 1, got {raw['max_new_tokens']!r}")
    methods = tuple(raw.pop("methods", ["generate"]))
    if not methods or any(m not in METHODS for m in methods):
        raise ValueError(f"{p}: methods must be a non-empty subset of {METHODS}, not {methods}")
    if raw.get("prior") and raw["scorer"] != "exact_match":
        raise ValueError(
            f"{p}: prior is scored for the exact_match scorer only, not {raw['scorer']!r}"
        )
    if raw.get("chance", "uniform_option") not in CHANCE:
        raise ValueError(f"{p}: chance must be one of {CHANCE}, not {raw['chance']!r}")
    return Benchmark(
        methods=methods,
        groups=tuple(raw.pop("groups", ())),
        filter=dict(raw.pop("filter", None) or {}),
        source=str(p),
        **raw,
    )
