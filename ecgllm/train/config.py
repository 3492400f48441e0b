"""Training configuration: YAML in sections + `key=value` overrides; unknown keys are errors.

    cfg = load_config("recipes/configs/tiny_cpu.yaml", ["train.learning_rate=1e-4", "lora.r=8"])

Field names follow HF TrainingArguments where one exists (learning_rate,
per_device_train_batch_size, gradient_accumulation_steps, ...). Every field's help is its
comment here: the one source of truth for the YAML keys and the command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.tasks.common import CHOICE_FORMATS
from ..yamlfile import read_mapping


@dataclass
class ModelCfg:
    backbone: Any = "tiny"  # "tiny", a hub name / local path, or a config dict {model_type: ...}
    vision: Any = "tiny"  # "tiny", "none", a hub name / local path, or a config dict
    ecg: Any = "tiny"  # "tiny", "none", or EcgEncoderConfig kwargs
    chat_family: str | None = None  # force a chat template family (llama3, gemma, chatml, ecgllm)
    # a previous stage's output dir: its trained modules are loaded first
    init_from: str | None = None
    # pretrained ECG-encoder safetensors (recipes/pretrain_ecg_encoder.py)
    ecg_weights: str | None = None
    gradient_checkpointing: bool = False  # recompute activations in backward (less memory)
    # ECG tokens -> LLM: linear, mlp2x_gelu, or qformer (learned queries cross-attending to the
    # encoder's tokens: ecg_query_tokens tokens per ECG; trains with the LLM frozen too)
    ecg_projector: str = "mlp2x_gelu"
    ecg_query_tokens: int = 32  # tokens per ECG with the qformer projector
    image_projector: str = "mlp2x_gelu"  # vision patches -> LLM: linear or mlp2x_gelu
    image_pool: int = 1  # average-pool the vision patch grid by this factor per side
    # each ECG's measurements as a line of text after it in the prompt ("expert features"): none,
    # rhythm (rate, RR variation, P waves) or all (also intervals, axis, voltage); saved with the
    # processor, so evaluation and generation add the same text
    expert_features: str = "none"
    # how lettered multiple-choice questions are answered: letter ("B. sinus rhythm", as built) or
    # name_letter ("sinus rhythm (B)": the option's words first, so a pretrained LLM can use what
    # it knows of them); saved with the processor, so evaluation asks and scores the same way
    choice_answer: str = "letter"
    # the tokenizer route: an ECG tokenizer folder (data_builders/ecg_tokenizer.py); the LLM's
    # vocabulary gains its tokens and reads each ECG as them, with no ECG encoder (model.ecg: none).
    # With lora.mode lora the new token rows train (PEFT trainable tokens) unless
    # lora.train_modules already trains embed_tokens
    ecg_tokenizer: str | None = None


@dataclass
class DataCfg:
    # a dataset built by data_builders/build.py, or a list of them trained on together (e.g. the
    # simulated default and your real records: [runs/default/instruct, data/ludb])
    path: str | list[str] = "runs/default/instruct"
    tasks: list[str] | None = None  # keep only these task families (None: all)
    max_length: int = (
        1024  # tokens per sample (longer ones cut at the end; dropped if that splits an ECG)
    )
    group_by_length: bool = True  # batch samples of similar length (less padding)
    # pack each micro-batch's samples into as few rows of max_length as they fit in (block-diagonal
    # attention through position ids; same loss, less padding); not for native VLM backbones
    packing: bool = False
    limit_train: int | None = None  # first N training samples only
    limit_eval: int | None = 64  # validation samples scored for the eval loss
    # cap the training samples of each task family (an int for all, or {task: n}); a seeded random
    # subset keeps a large family (ECG-QA is ~55% of a default build) from dominating a short run
    max_per_task: int | dict | None = None
    # teach in stages: a list of {tasks: [families] | all, share: fraction of the run's steps}, in
    # order; each stage's batches come only from its families (after max_per_task), e.g.
    # describe -> choose -> verify -> everything: [{tasks: [report, ground], share: 0.25},
    # {tasks: [rhythm, mcq], share: 0.25}, {tasks: [ecgqa, detect], share: 0.25}, {tasks: all,
    # share: 0.25}]; shares add up to 1. null: every family mixed throughout
    curriculum: list | None = None
    # signal augmentation of the training batches (ecgllm.data.augment.SignalAugment): true for
    # its defaults (gain, offset, wander, noise, time shift, lead dropout), or a dict of its fields
    augment: bool | dict = False
    # put the reports of the k most similar training ECGs after each ECG in the prompt (0: off);
    # evaluate with the same k and index (eval/run.py --retrieve --retrieval-index)
    retrieve: int = 0
    # the index (data_builders/retrieval_index.py: training-split embeddings + reports)
    retrieval_index: str | None = None
    # with model.ecg_tokenizer: the ECG tokens are supervised too (autoregressive forecasting of
    # the ECG, the pretraining stage of the tokenizer route), besides the assistant turns
    ecg_token_loss: bool = False


@dataclass
class LoraCfg:
    mode: str = "lora"  # align (LLM frozen; projectors + ECG encoder train), lora, full
    r: int = 16  # LoRA rank
    alpha: int = 32  # LoRA scale numerator (scale = alpha / r)
    dropout: float = 0.05  # LoRA dropout
    # LLM linear layers that get adapters
    targets: list[str] = field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )
    train_ecg_encoder: bool = True  # the ECG encoder trains too (false: frozen)
    # LLM modules trained fully besides LoRA (e.g. [embed_tokens, lm_head] for a random-init LLM
    # that has no vocabulary to adapt; empty for pretrained backbones)
    train_modules: list[str] = field(default_factory=list)
    vision_blocks: int = 0  # also train the vision tower's last N blocks
    quantize: int | None = None  # 4 or 8: QLoRA base (bitsandbytes)


@dataclass
class TrainCfg:
    seed: int = 0  # initialisation, data order, augmentation
    learning_rate: float = 2e-4  # peak learning rate of LoRA / trained LLM modules
    projector_learning_rate: float | None = None  # default: learning_rate
    weight_decay: float = 0.0  # AdamW weight decay
    num_train_epochs: float = 1.0  # passes over the training samples
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_train_batch_size: int = 4  # samples per process per micro-batch
    per_device_eval_batch_size: int = 8  # samples per process per eval batch
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step
    warmup_ratio: float = 0.03  # share of the steps with a linear warm-up
    lr_scheduler_type: str = "cosine"  # cosine, linear, constant_with_warmup
    max_grad_norm: float = 1.0  # gradient clipping (0: none)
    logging_steps: int = 10  # log the loss every N steps
    eval_steps: int = 0  # 0: at the end only
    save_steps: int = 0  # 0: at the end only
    save_total_limit: int = 2  # checkpoints kept in output.dir
    mixed_precision: str = "auto"  # auto (bf16 on GPU, no on CPU), no, bf16, fp16
    resume_from_checkpoint: str | None = None  # a checkpoint dir, or "latest" in output.dir


@dataclass
class OutputCfg:
    dir: str = "runs/sft"  # checkpoints, logs, final/ (adapter + processor), base/
    report_to: list[str] = field(default_factory=lambda: ["csv"])  # csv, tensorboard


@dataclass
class HubCfg:
    """Where recipes/merge_and_push.py publishes this run (saved with every checkpoint's
    recipe.yaml; --push-to-hub and --private on its command line win)."""

    push: bool = False  # push after merging
    repo_id: str | None = None  # ORG/NAME on the Hugging Face Hub
    private: bool = True  # create the repository private


@dataclass
class RecipeConfig:
    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    lora: LoraCfg = field(default_factory=LoraCfg)
    train: TrainCfg = field(default_factory=TrainCfg)
    output: OutputCfg = field(default_factory=OutputCfg)
    hub: HubCfg = field(default_factory=HubCfg)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = {f.name: f.type for f in dataclasses.fields(RecipeConfig)}


class ConfigError(ValueError):
    pass


def _section_class(name: str):
    return next(f.default_factory for f in dataclasses.fields(RecipeConfig) if f.name == name)


def from_dict(d: dict, where: str = "config") -> RecipeConfig:
    d = d or {}
    unknown = set(d) - set(SECTIONS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown section(s) {sorted(unknown)}; sections are {sorted(SECTIONS)}"
        )
    kwargs = {}
    for name in SECTIONS:
        cls = _section_class(name)
        values = d.get(name) or {}
        if not isinstance(values, dict):
            raise ConfigError(
                f"{where}: section {name!r} must be a mapping, got {type(values).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        bad = set(values) - known
        if bad:
            raise ConfigError(
                f"{where}: unknown key(s) {sorted(f'{name}.{k}' for k in bad)}; {name} has {sorted(known)}"
            )
        kwargs[name] = cls(**{k: _coerce(cls, k, v, where) for k, v in values.items()})
    return RecipeConfig(**kwargs)


_TYPES: dict[str, Any] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "Path": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "None": lambda v: v is None,
    "list": lambda v: isinstance(v, (list, tuple)),
    "dict": lambda v: isinstance(v, dict),
    "Any": lambda v: True,
}


def _coerce(cls, key: str, value: Any, where: str) -> Any:
    """The value checked against the field's annotation (a YAML value of the wrong kind is a
    ConfigError naming the key, not a TypeError later); YAML reads 1e-4 as a string (YAML 1.1
    wants a dot), so numbers given as text are converted per the field's type."""
    ann = str(next(f.type for f in dataclasses.fields(cls) if f.name == key))
    if not isinstance(value, str):
        kinds = [a.strip() for a in ann.split("|")]
        for k in kinds:
            if _TYPES.get(k.split("[")[0], _TYPES["Any"])(value) and (
                k != "list[str]" or all(isinstance(x, str) for x in value)
            ):
                return value
        raise ConfigError(
            f"{where}: {cls.__name__.removesuffix('Cfg').lower()}.{key} must be {ann}, got {value!r}"
        )
    for typ in ("float", "int"):
        if ann.startswith(typ) or f"{typ} |" in ann:
            try:
                return float(value) if typ == "float" else int(value)
            except ValueError:
                raise ConfigError(
                    f"{where}: {cls.__name__.removesuffix('Cfg').lower()}.{key} must be a number, got {value!r}"
                ) from None
    if ann == "bool":
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not key=value (e.g. train.learning_rate=1e-4)")
    key, _, raw = text.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() != "" else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: the value is not valid YAML: {e}") from None
    return key.strip().split("."), value


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RecipeConfig:
    """YAML file (or defaults when None) + overrides like `train.max_steps=20`."""
    d: dict = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} not found")
        d = read_mapping(p, "sections (a mapping)", ConfigError)
    for o in overrides or []:
        keys, value = parse_override(o)
        if len(keys) != 2 or keys[0] not in SECTIONS:
            raise ConfigError(
                f"override {o!r}: use section.key=value with a section in {sorted(SECTIONS)}"
            )
        d.setdefault(keys[0], {})
        if d[keys[0]] is None:
            d[keys[0]] = {}
        d[keys[0]][keys[1]] = value
    cfg = from_dict(d, str(path or "defaults"))
    validate(cfg)
    return cfg


def validate(cfg: RecipeConfig) -> None:
    if (
        cfg.model.ecg_projector not in ("linear", "mlp2x_gelu", "qformer")
        or cfg.model.ecg_query_tokens < 1
    ):
        raise ConfigError(
            f"model.ecg_projector must be linear, mlp2x_gelu or qformer (with model.ecg_query_tokens >= 1), "
            f"not {cfg.model.ecg_projector!r} / {cfg.model.ecg_query_tokens}"
        )
    if cfg.data.retrieve < 0 or (cfg.data.retrieve and not cfg.data.retrieval_index):
        raise ConfigError(
            f"data.retrieve {cfg.data.retrieve}: must be 0 (off) or k >= 1 with data.retrieval_index set"
        )
    if cfg.model.expert_features not in ("none", "rhythm", "all"):
        raise ConfigError(
            f"model.expert_features must be none, rhythm or all, not {cfg.model.expert_features!r}"
        )
    if cfg.model.choice_answer not in CHOICE_FORMATS:
        raise ConfigError(
            f"model.choice_answer must be one of {', '.join(CHOICE_FORMATS)}, not {cfg.model.choice_answer!r}"
        )
    if cfg.model.ecg_tokenizer and cfg.model.ecg not in ("none", None):
        raise ConfigError(
            "model.ecg_tokenizer: ECG tokens replace the ECG encoder; set model.ecg=none"
        )
    if cfg.model.ecg_tokenizer and cfg.lora.mode == "align" and not cfg.lora.train_modules:
        raise ConfigError(
            "lora.mode align trains projectors and the ECG encoder, which a model reading ECG tokens "
            "lacks: use lora.mode lora (the new token rows train) or full, or name lora.train_modules"
        )
    if cfg.data.ecg_token_loss and not cfg.model.ecg_tokenizer:
        raise ConfigError(
            "data.ecg_token_loss needs model.ecg_tokenizer (a model reading ECG tokens)"
        )
    if cfg.data.augment and cfg.model.ecg_tokenizer:
        raise ConfigError(
            "data.augment acts on the ECG encoder's inputs; a model reading ECG tokens has none"
        )
    if cfg.lora.mode not in ("align", "lora", "full"):
        raise ConfigError(f"lora.mode must be align, lora or full, not {cfg.lora.mode!r}")
    if cfg.lora.quantize not in (None, 4, 8):
        raise ConfigError(f"lora.quantize must be null, 4 or 8, not {cfg.lora.quantize!r}")
    if cfg.train.per_device_train_batch_size < 1 or cfg.train.gradient_accumulation_steps < 1:
        raise ConfigError(
            "train.per_device_train_batch_size and gradient_accumulation_steps must be >= 1"
        )
    if cfg.train.mixed_precision not in ("auto", "no", "bf16", "fp16"):
        raise ConfigError(
            f"train.mixed_precision must be auto, no, bf16 or fp16, not {cfg.train.mixed_precision!r}"
        )
    if cfg.train.lr_scheduler_type not in ("cosine", "linear", "constant_with_warmup"):
        raise ConfigError("train.lr_scheduler_type must be cosine, linear or constant_with_warmup")
    cap = cfg.data.max_per_task
    caps = cap.values() if isinstance(cap, dict) else [] if cap is None else [cap]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in caps):
        raise ConfigError(
            f"data.max_per_task must be a positive integer or {{task: positive integer}}, not {cap!r}"
        )
    if isinstance(cap, dict):
        from ..data.tasks import FAMILIES

        unknown = sorted(set(cap) - set(FAMILIES))
        if unknown:  # a misspelt family would silently stay uncapped
            raise ConfigError(
                f"data.max_per_task: unknown task famil{'y' if len(unknown) == 1 else 'ies'} {unknown} "
                f"(known: {', '.join(FAMILIES)})"
            )
    check_curriculum(cfg.data.curriculum)
    bad = set(cfg.output.report_to) - {"csv", "tensorboard"}
    if bad:
        raise ConfigError(f"output.report_to: unknown {sorted(bad)} (csv, tensorboard)")
    if cfg.hub.push and not (isinstance(cfg.hub.repo_id, str) and cfg.hub.repo_id.count("/") == 1):
        raise ConfigError(
            f"hub.push is true: hub.repo_id must be ORG/NAME, not {cfg.hub.repo_id!r}"
        )


def check_curriculum(stages) -> list[tuple[tuple[str, ...] | None, float]]:
    """data.curriculum as [(families or None for all, share)], or a ConfigError naming the stage
    and what is wrong with it."""
    if stages is None:
        return []
    from ..data.tasks import FAMILIES

    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"data.curriculum must be a non-empty list of stages, not {stages!r}")
    out = []
    for k, st in enumerate(stages, 1):
        where = f"data.curriculum stage {k}"
        if not isinstance(st, dict) or set(st) - {"tasks", "share"} or "tasks" not in st:
            raise ConfigError(
                f"{where}: expected {{tasks: [families] | all, share: fraction}}, got {st!r}"
            )
        tasks, share = st["tasks"], st.get("share")
        if tasks == "all":
            fam = None
        elif isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks):
            unknown = sorted(set(tasks) - set(FAMILIES))
            if unknown:
                raise ConfigError(
                    f"{where}: unknown task families {unknown} (known: {', '.join(FAMILIES)})"
                )
            fam = tuple(tasks)
        else:
            raise ConfigError(
                f"{where}: tasks must be a list of task families or 'all', not {tasks!r}"
            )
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise ConfigError(
                f"{where}: share must be a fraction of the run's steps in (0, 1], not {share!r}"
            )
        out.append((fam, float(share)))
    total = sum(s for _, s in out)
    if abs(total - 1) > 1e-6:
        raise ConfigError(f"data.curriculum: the stages' shares add up to {total:g}, not 1")
    return out
