"""Few-shot ECG question answering (the ECG-LM meta-learning setting, Tang et al., CHIL 2025):
N-way K-shot episodes over ECG-QA-style samples, answered in context.

    s = FewShotSettings(n_way=5, k_shot=5, episodes=20)
    eps = build_episodes(train_samples, test_samples, s, "single-verify")
    r = run_fewshot(model, processor, "runs/default/instruct", "runs/fewshot", s)   # per type

Protocol (stated, as the paper's code is not public):
- A **class** is an (question, answer) pair of one question type, e.g. ("Does this ECG show
  symptoms of sinus rhythm?", "yes"): the paper's "attribute-answer pairs"; for choose questions
  the answer alone (their wording pairs two findings at random, so each question is nearly
  unique). An episode's classes take their answers in turn (balanced), so that a constant
  answer ("no") cannot score well; a verify/choose episode whose answers still come out uneven
  (the pool lacks classes of one answer) is left out and counted (`balanced`).
- **Verify episodes are paired** (`paired_verify`, default): n_way // 2 questions, each with its
  "yes" and its "no" class, so the support shows each asked question answered both ways and the
  query must be read from its ECG (an odd n_way gives n_way - 1 classes; the results name the
  count). Unpaired, the support holds the query's question answered only with the query's
  answer: copying it scores 1.0 from the blank ECG too.
- **Choose episodes are paired** (`paired_choose`, default): every support and query sample is
  asked its choose question over two of the episode's classes, its own answer and another
  class its record lacks (ECG-QA's scp_code choose template, its pair drawn within the episode
  from the record's statements; samples whose record has every other class are not drawn).
  As built, the second finding of a choose question is seldom a class of the episode, so the
  support's answers leave one option and copying them scores from a blank ECG (measured: 19 of
  20 2-way queries on the Gemma build).
- **Meta split**: classes are divided between meta-train and meta-test by a seeded hash of the
  class (of its question for paired verify classes, so that both answers fall on one side; share
  `meta_test_share` to meta-test), so meta-test classes are never the meta-train ones; episodes
  for evaluation use meta-test classes only.
- An **episode** of a question type: N classes of that type, K support samples per class from
  the dataset's training split and `queries` query samples per class from its test split (so no
  query ECG is a support ECG, and no patient of a query is in the support set). For query-type
  questions ("What are the symptoms ...?") the N classes share one question and differ in their
  answers; for verify and choose types they are N different questions with their answers.
- **Answering in context**: one user turn holds the K*N support examples, shuffled (each: its ECG,
  the question and "Answer: ..."), then the query ECG and question; the model's answer is the most
  likely candidate (sum of log-probabilities of the answer span, as evaluation.answer scores
  multiple choice). Candidates: the question's own options for verify/choose questions (yes /
  no / not sure; the two findings / none / both), the N classes' answers for query questions.
  K = 0 is the zero-shot baseline on the same queries; the blank-ECG ablation blanks every ECG
  of the prompt.
- **Calibrated on the support set** (`calibrate`): each query asked alone (as zero-shot asks
  it), its candidates' scores shifted by a bias per answer (per question and answer for verify)
  fitted on the support samples, each scored alone the same way with its answer known
  (`fit_answer_bias`: the intercepts of a conditional logit over the model's scores). It learns
  how the model's scores lean on the episode's classes, a threshold the zero-shot argmax lacks
  (a model whose P(yes) ranks the ECGs right may still say "no" to all); the blank ECG gives
  every sample of a question the same scores, so its calibrated answers stay constant.
- **Readout** (`readout`, with calibrate): the support set fits, besides the bias, per answer a
  weight vector over the frozen model's answer state (its last-layer hidden state where it
  predicts the answer, standardised over the support set; `answer_states`,
  `fit_answer_readout`): as if the support set adapted the answers' rows of the LM head, which
  read the same state; the LLM and the fusion module stay frozen. A blank ECG still gives each
  sample of a question the same state.
- **Candidate readout** (`candidate_readout`, with calibrate, alone or with the readout): one
  weight vector, shared by every candidate, over the state of the candidate's own answer (the
  last layer's mean over the answer's tokens, the question and ECG before it; standardised over
  the support's candidates; `candidate_states`): a probe of whether an answer is right as the
  model reads it, which all K*N support samples train whatever their question and answers (the
  readout's weights are per answer, K samples each). A blank ECG gives each sample of a
  question the same candidate states.
- **Selection** (`selection`): settings such as the L2 penalties are chosen on episodes of the
  meta-train classes whose queries come from the validation split, never on meta-test episodes;
  not with queries from the training split, whose ECGs the SFT model trained on (their states
  are memorised: selected so, the penalties favoured what later scored worse on meta-test).
- **Lead subsets**: `leads` 12, 6, 3 or 1 (ecgllm.signal.perturb.LEAD_SUBSETS) applied to every
  ECG of the episode.
- **Score**: accuracy per question type, its mean over episodes with a 95% interval from the
  episodes' spread (t-interval of the episode means), the chance level (mean 1/candidates) and
  the majority level (what the episode's commonest answer scores: an episode whose classes lean
  to one answer, as small builds' verify episodes do, is scored against it, not against chance).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.tasks.common import question_text

QUESTION_TYPES = ("single-verify", "single-choose", "single-query")


@dataclass(frozen=True)
class FewShotSettings:
    n_way: int = 5  # classes per episode
    k_shot: int = 5  # support samples per class (0: zero-shot on the same queries)
    queries: int = 1  # query samples per class per episode
    episodes: int = 10  # episodes per question type
    leads: int = 12  # leads kept in every ECG of an episode: 12, 6, 3 or 1
    meta_test_share: float = 0.5  # share of the classes held out for meta-test (evaluation)
    # classes need this many training samples (at least k_shot): runs with K = 0, 1, ... 5 then
    # share their episodes and queries, so zero-shot and few-shot are compared on the same ones
    min_support: int = 5
    # 0: answer in context (support examples in the prompt); > 0: adapt the fusion module on the
    # support set with this many gradient steps (MAML's inner loop), then answer without them
    adapt_steps: int = 0
    # the inner loop's learning rate (plain SGD on the projector, whose gradients are small: at 1e-3,
    # the earlier default, adapting changed no answer; measured sweep in the README)
    adapt_lr: float = 3.0
    # answer in the query's own prompt, its candidates' scores shifted by a per-answer bias fitted
    # on the support set scored the same way (each support sample alone, its answer known):
    # `fit_answer_bias`. Calibration learns how the model's answer scores lean on this episode's
    # classes (a model that ranks P(yes) right but says "no" to all); the blank ECG then answers
    # every query alike. Exclusive with adapt_steps.
    calibrate: bool = False
    # the bias's L2 penalty (on the mean log-likelihood of the support's answers): keeps the bias of
    # answers the support never gives ("not sure", "none") and of separable support sets finite
    calibrate_l2: float = 0.01
    # calibrate with a readout: besides the bias, per answer a weight vector over the frozen model's
    # answer state (its last hidden state where it predicts the answer: what its LM head reads),
    # standardised over the support set and fitted with it (fit_answer_readout): the support set
    # adapts the answers' output rows, the LLM stays frozen
    readout: bool = False
    # the weights' L2 penalty: chosen on meta-train episodes, never on the meta-test ones that
    # evaluation scores (README, sessions 37 and 38: with validation queries, `selection`, too)
    readout_l2: float = 1.0
    # calibrate with a candidate readout: besides, one weight vector shared by every candidate over
    # the state of the candidate's own answer (the last layer's mean over its tokens, standardised
    # over the support's candidates; candidate_states): a probe of "this answer is right" that
    # every support sample trains whatever its question or answers (the answer-state readout's
    # weights are per answer, 5 samples each in a 5-way 5-shot choose episode)
    candidate_readout: bool = False
    # its L2 penalty: with the answer-state readout, 0.1 was the best on both backbones' selection
    # episodes (README, session 38); alone, 0.01 - 0.001 was
    candidate_l2: float = 0.1
    # verify/choose episodes only when their classes' answers are even (counts within 1): a pool
    # with one "yes" class and four "no" ones gives no 5-way verify episode (reported with the
    # pool's answer counts) instead of episodes a constant "no" scores 0.80 on
    balanced: bool = True
    # verify episodes ask each of their questions with both answers ("yes" and "no" classes of the
    # same question, n_way // 2 questions): with one class per question, the support shows the
    # query's own question answered K times with the query's answer, so copying the support's
    # answer scores 1.0 without reading any ECG (measured: 20 of 20 2-way queries on the demo
    # build). False: classes drawn as for choose questions (the attribute-answer pairs as they come)
    paired_verify: bool = True
    # choose episodes ask each support and query sample over two of the episode's classes (its
    # answer and one its record lacks), so that the support's answers do not give the query's
    # away; False: the choose questions as built (their pairs drawn at random over all statements)
    paired_choose: bool = True
    seed: int = 0  # seeds the meta split and the episodes
    # episodes of the meta-train classes, support from the training split and queries from the
    # validation split: for choosing settings (readout_l2, candidate_l2, ...) without looking at
    # the meta-test classes, with queries the SFT model has not trained on, as meta-test's (queries
    # from the training split favour whatever reads its memorised states: measured, README)
    selection: bool = False
    question_types: tuple[str, ...] = field(default=QUESTION_TYPES)  # ECG-QA question types scored

    def __post_init__(self):
        from ..signal.perturb import LEAD_SUBSETS

        if self.n_way < 2 or self.k_shot < 0 or self.queries < 1 or self.episodes < 1:
            raise ValueError(
                f"few-shot needs n_way >= 2, k_shot >= 0, queries >= 1, episodes >= 1; got {self.n_way}, "
                f"{self.k_shot}, {self.queries}, {self.episodes}"
            )
        if self.leads not in LEAD_SUBSETS:
            raise ValueError(f"leads must be one of {sorted(LEAD_SUBSETS)}, not {self.leads}")
        if not 0 < self.meta_test_share <= 1:
            raise ValueError(f"meta_test_share must be in (0, 1], not {self.meta_test_share}")
        if self.calibrate and self.adapt_steps:
            raise ValueError(
                "calibrate and adapt_steps are two ways to use the support set: choose one"
            )
        if self.readout and not self.calibrate:
            raise ValueError("readout is a way to calibrate: it needs calibrate=True")
        if self.candidate_readout and not self.calibrate:
            raise ValueError("candidate_readout is a way to calibrate: it needs calibrate=True")
        if self.readout_l2 <= 0 or self.candidate_l2 <= 0:
            raise ValueError(
                f"readout_l2 and candidate_l2 must be > 0, not {self.readout_l2}, {self.candidate_l2}"
            )
        if self.calibrate_l2 <= 0:
            raise ValueError(
                f"calibrate_l2 must be > 0 (the bias of an unseen answer), not {self.calibrate_l2}"
            )


def answer_of(sample: dict) -> str:
    return sample["messages"][1]["content"][0]["text"]


def class_key(sample: dict) -> str:
    """type|question|answer; for choose questions type||answer: their wording names the two
    findings offered, drawn at random per question, so almost every question is unique and the
    class is the finding chosen (a query's candidates stay its own options)."""
    q = "" if sample["question_type"].endswith("choose") else question_text(sample)
    return f"{sample['question_type']}|{q}|{answer_of(sample)}"


def is_meta_test(key: str, share: float, seed: int) -> bool:
    """The seeded meta split of a class: stable across datasets and runs."""
    h = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64 < share


@dataclass
class Episode:
    question_type: str
    classes: list[str]  # class keys
    support: list[int]  # indices into the training samples, shuffled
    queries: list[int]  # indices into the test samples
    candidates: list[list[str]]  # per query: the answers scored
    # paired choose: each support sample's and each query's question as asked (empty: as built)
    support_questions: list[str] = field(default_factory=list)
    query_questions: list[str] = field(default_factory=list)
    # per support sample: the answers it would be scored over as a query (calibrate)
    support_candidates: list[list[str]] = field(default_factory=list)


def _pools(
    samples, qtype: str, settings: FewShotSettings, held: bool = True
) -> dict[str, list[int]]:
    """Sample indices per class of the meta-test classes (held) or of the meta-train ones. Paired
    verify classes are split by their question, so a question's "yes" and "no" stay together."""
    pool: dict[str, list[int]] = defaultdict(list)
    by_question = settings.paired_verify and qtype.endswith("verify")
    statements_only = settings.paired_choose and qtype.endswith("choose")
    for i, s in enumerate(samples):
        if statements_only and s.get("attribute_type") != "scp_code":
            continue  # (paired choose: the findings offered are the records' statements)
        if s["task"] == "ecgqa" and s["question_type"] == qtype and len(s["record_ids"]) == 1:
            key = class_key(s)
            side = key.rsplit("|", 1)[0] if by_question else key
            if is_meta_test(side, settings.meta_test_share, settings.seed) == held:
                pool[key].append(i)
    return pool


def build_episodes(
    train, test, settings: FewShotSettings, qtype: str, meta_train: bool = False,
    why: dict | None = None, statements: Mapping[str, Collection[str]] | None = None,
) -> list[Episode]:  # fmt: skip
    """`settings.episodes` episodes of question type `qtype` (fewer, possibly none, when too few
    meta-test classes have K training and `queries` test samples, or, with `settings.balanced`,
    when a verify/choose episode's answers cannot be even). `train`/`test`: sequences of sample
    dicts (a built dataset's splits). `meta_train=True`: episodes of the meta-train classes: for
    meta-training, queries and support both from `train` (pass it twice: never the same sample
    in both), or for choosing settings, queries from the validation split (`selection`). `why`: filled with the reason when episodes are left out (`unbalanced`: how many,
    `answers`: classes per answer in the pool; `paired_choose`: how many lacked samples that can
    be asked over two of their classes). `statements`: record id -> the statement names it has
    (record_statements), which paired choose episodes need."""
    pair_choose = settings.paired_choose and qtype.endswith("choose")
    if pair_choose and statements is None:
        raise ValueError(
            "paired choose episodes ask over the records' statements: pass statements="
            "record_statements(dataset), or FewShotSettings(paired_choose=False)"
        )
    held = not meta_train
    sup, qry = _pools(train, qtype, settings, held), _pools(test, qtype, settings, held)
    one_pool = test is train  # (meta-training: a sample is a query or support, never both)
    need = max(settings.k_shot, settings.min_support) + (settings.queries if one_pool else 0)
    ok = sorted(k for k in qry if len(sup.get(k, [])) >= need and len(qry[k]) >= settings.queries)
    paired = settings.paired_verify and qtype.endswith("verify")
    groups: dict[str, list[str]] = defaultdict(list)  # query questions: classes sharing a question
    for k in ok:
        groups[k.split("|")[1] if qtype.endswith("query") else ""].append(k)
    if paired:  # the questions whose "yes" and "no" classes both qualify, as [no, yes] pairs
        by_q: dict[str, dict[str, str]] = defaultdict(dict)
        for k in ok:
            _, q, a = k.split("|", 2)
            by_q[q][a] = k
        pairs = [
            [by_q[q]["no"], by_q[q]["yes"]] for q in sorted(by_q) if {"no", "yes"} <= set(by_q[q])
        ]
        if len(pairs) < settings.n_way // 2:
            if why is not None:
                why["paired"] = len(pairs)
            return []
        groups = {"": [k for pair in pairs for k in pair]}
    else:
        groups = {g: ks for g, ks in groups.items() if len(ks) >= settings.n_way}
    if not groups:
        return []
    t = QUESTION_TYPES.index(qtype) if qtype in QUESTION_TYPES else len(QUESTION_TYPES)
    rng = np.random.default_rng([settings.seed, t])  # classes and queries: the same for every K
    names = sorted(groups)
    out = []
    for e in range(settings.episodes):
        ks = groups[names[int(rng.integers(len(names)))]]
        if paired:  # n_way // 2 questions, each with both of its answers
            chosen = rng.choice(len(pairs), settings.n_way // 2, replace=False)
            classes = sorted(k for i in chosen for k in pairs[int(i)])
        else:
            classes = _balanced_classes(ks, settings.n_way, rng)
        qpool, spool = qry, sup
        if pair_choose:  # the samples that can be asked over two classes of the episode
            named = [k.split("|", 2)[2] for k in classes]
            qpool = {
                k: [i for i in qry[k] if _others_absent(test[i], named, statements)]
                for k in classes
            }
            spool = {k: [i for i in sup[k] if _others_absent(train[i], named, statements)] for k in classes}  # fmt: skip
            if any(len(qpool[k]) < settings.queries or len(spool[k]) < need for k in classes):
                if why is not None:  # (K does not decide it: runs of K <= min_support stay aligned)
                    why["paired_choose"] = why.get("paired_choose", 0) + 1
                continue
        queries = [
            int(i) for k in classes for i in rng.choice(qpool[k], settings.queries, replace=False)
        ]
        rs = np.random.default_rng([settings.seed, t, e, 1])  # the support set: its own stream
        taken = set(queries) if one_pool else set()
        support = [
            int(i)
            for k in classes
            for i in rs.choice(
                [j for j in spool[k] if j not in taken], settings.k_shot, replace=False
            )
        ]
        rs.shuffle(support)
        counts = Counter(k.split("|", 2)[2] for k in classes)
        if (settings.balanced and not qtype.endswith("query")
                and (len(counts) < 2 or max(counts.values()) - min(counts.values()) > 1)):  # fmt: skip
            if why is not None:  # (the draws above are made all the same: episodes stay aligned)
                why["unbalanced"] = why.get("unbalanced", 0) + 1
                why["answers"] = dict(sorted(Counter(k.split("|", 2)[2] for k in ks).items()))
            continue
        answers = sorted(counts)
        if pair_choose:  # each question re-asked over its answer and another class: queries and
            # support each on their own stream (the queries' questions the same for every K)
            rq, rs = (np.random.default_rng([settings.seed, t, e, j]) for j in (2, 3))
            asked_q = [_ask_within(test[i], named, statements, rq) for i in queries]
            asked_s = [_ask_within(train[i], named, statements, rs) for i in support]
            out.append(Episode(qtype, classes, support, queries, [c for _, c in asked_q],
                               [q for q, _ in asked_s], [q for q, _ in asked_q], [c for _, c in asked_s]))  # fmt: skip
            continue

        def cands(s: dict, answers: list[str] = answers) -> list[str]:
            return answers if qtype.endswith("query") else sorted(set(s["options"]))

        out.append(Episode(qtype, classes, support, queries, [cands(test[i]) for i in queries],
                           support_candidates=[cands(train[i]) for i in support]))  # fmt: skip
    return out


def record_statements(ds) -> dict[str, set[str]]:
    """Record id -> the names of the statements it has that a choose question can offer (every
    SCP statement but NORM), from a built dataset's records (paired choose episodes)."""
    from ..data.tasks.ecgqa import choosable
    from ..text.vocab import scp_name

    out = {}
    for rid, labels in zip(ds.records["record_id"], ds.records["labels"], strict=True):
        codes = json.loads(labels) if isinstance(labels, str) else (labels or {})
        out[str(rid)] = {scp_name(c) for c in choosable(codes)}
    return out


def _others_absent(sample: dict, named: list[str], statements: Mapping[str, Collection[str]]) -> list[str]:  # fmt: skip
    """The episode's classes (`named`) that `sample`'s record lacks, if its record is known to
    have its answer: what a paired choose question can offer beside it (empty: not askable)."""
    have = statements.get(str(sample["record_ids"][0]))
    if have is None or answer_of(sample) not in have:
        return []
    return [a for a in named if a not in have]


def _ask_within(sample: dict, named: list[str], statements, rng: np.random.Generator) -> tuple[str, list[str]]:  # fmt: skip
    """The sample's choose question over its answer and a class of the episode its record lacks
    (in random order), and its candidates (the two and "none", as built questions offer)."""
    from ..data.tasks.ecgqa import CHOOSE

    other = _others_absent(sample, named, statements)
    b = other[int(rng.integers(len(other)))]
    pair = [answer_of(sample), b] if rng.random() < 0.5 else [b, answer_of(sample)]
    return CHOOSE.format(*pair), sorted({*pair, "none"})


def _balanced_classes(keys: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """n classes of `keys`, their answers as even as the pool allows: answers are taken in turn
    (in a seeded order), a class of each at random. Without it a verify episode would be mostly
    "no" classes (most findings are absent), and answering "no" to everything would score high."""
    by_answer: dict[str, list[str]] = defaultdict(list)
    for k in keys:
        by_answer[k.split("|", 2)[2]].append(k)
    answers = [sorted(by_answer)[i] for i in rng.permutation(len(by_answer))]
    left = {a: [by_answer[a][i] for i in rng.permutation(len(by_answer[a]))] for a in answers}
    out: list[str] = []
    while len(out) < n:
        for a in answers:
            if left[a] and len(out) < n:
                out.append(left[a].pop())
    return sorted(out)


def _kept_leads(leads: int) -> np.ndarray:
    """[12] bool: the leads of the subset (ecgllm.signal.perturb.LEAD_SUBSETS) in STANDARD_12 order."""
    from ..signal.perturb import LEAD_SUBSETS
    from ..signal.record import STANDARD_12

    return np.array([ld in LEAD_SUBSETS[leads] for ld in STANDARD_12])


def episode_rows(ep: Episode, train_ds, test_ds, leads: int) -> list[dict]:
    """Per query, the candidate rows to score: [user (support examples + query), assistant
    (candidate)], with every ECG of the prompt (support, then the query) on the lead subset."""
    keep = _kept_leads(leads)
    support = [train_ds[i] for i in ep.support]
    asked = ep.support_questions or [question_text(s) for s in support]
    rows = []
    for n, (qi, cands) in enumerate(zip(ep.queries, ep.candidates, strict=True)):
        q = test_ds[qi]
        items: list[dict] = []
        for j, (s, text) in enumerate(zip(support, asked, strict=True)):
            items += [{"type": "text", "text": f"Example {j + 1}: "}, {"type": "ecg", "text": None},
                      {"type": "text", "text": f"{text} Answer: {answer_of(s)}\n"}]  # fmt: skip
        lead = "Now this ECG: " if support else ""
        items += [{"type": "text", "text": lead}, {"type": "ecg", "text": None},
                  {"type": "text", "text": ep.query_questions[n] if ep.query_questions else question_text(q)}]  # fmt: skip
        sig = np.concatenate([np.asarray(s["signal"], np.float32) for s in [*support, q]])
        mask = np.concatenate([np.asarray(s["lead_mask"], bool) for s in [*support, q]]) & keep
        sig = sig * mask[:, :, None]
        base = {"id": f"{q['id']}@{'+'.join(str(i) for i in ep.support[:3])}", "record_ids":
                [r for s in [*support, q] for r in s["record_ids"]], "patient_id": q["patient_id"],
                "modalities": ["signal"], "signal": sig, "lead_mask": mask}  # fmt: skip
        for c in cands:
            rows.append({**base, "messages": [{"role": "user", "content": items},
                                              {"role": "assistant", "content": [{"type": "text", "text": c}]}],
                         "gold": answer_of(q), "candidate": c})  # fmt: skip
    return rows


def alone_rows(ep: Episode, train_ds, test_ds, leads: int) -> list[dict]:
    """episode_rows of the episode's queries asked alone, without the support set in the prompt
    (adapted and calibrated answering; zero-shot's rows)."""
    return episode_rows(dataclasses.replace(ep, support=[], support_questions=[]), train_ds, test_ds, leads)  # fmt: skip


def sample_rows(indices: list[int], ds, leads: int, questions: list[str] | None = None) -> list[dict]:  # fmt: skip
    """The samples as training rows (their own question and answer, or `questions`: as a paired
    choose episode asks them), every ECG on the lead subset: the support set that a model adapts
    on (adapt_steps) or meta-trains on."""
    keep = _kept_leads(leads)
    rows = []
    for n, i in enumerate(indices):
        r = dict(ds[i])
        if questions:  # the user turn's text is the question
            user = r["messages"][0]
            content = [c for c in user["content"] if c["type"] != "text"] + [{"type": "text", "text": questions[n]}]  # fmt: skip
            r["messages"] = [{**user, "content": content}, *r["messages"][1:]]
        r["lead_mask"] = np.asarray(r["lead_mask"], bool) & keep
        r["signal"] = np.asarray(r["signal"], np.float32) * r["lead_mask"][:, :, None]
        r["modalities"] = ["signal"]  # the pages are not shown (as in the episodes' prompts)
        r["messages"] = [
            {**m, "content": [c for c in m["content"] if c["type"] != "image"]}
            if not isinstance(m["content"], str)
            else m
            for m in r["messages"]
        ]
        r.pop("images", None)
        rows.append(r)
    return rows


def fusion_parameters(model) -> list[torch.nn.Parameter]:
    """The parameters few-shot adaptation and meta-training change: the ECG projector's (the
    fusion module), the trained copy when the model is a PEFT model; the LLM and encoders stay."""
    params = [
        p
        for n, p in model.named_parameters()
        if "ecg_projector" in n and "original_module" not in n
    ]
    if not params:
        raise ValueError("the model has no ECG projector to adapt")
    return params


def load_fusion(model, path: str | Path) -> None:
    """Meta-trained weights (recipes/meta_train.py) into the model: its ECG projector's, and its
    LoRA weights when meta-training tuned them (`tune="fusion+lora"`)."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    own = dict(model.named_parameters())
    missing = [k for k in state if k not in own]
    if missing or not state:
        raise ValueError(f"{path}: keys {missing[:3]} are not this model's parameters "
                         "(meta-train with the same model and adapter)")  # fmt: skip
    with torch.no_grad():
        for k, v in state.items():
            if own[k].shape != v.shape:
                raise ValueError(
                    f"{path}: {k} has shape {tuple(v.shape)}, the model's {tuple(own[k].shape)}"
                )
            own[k].copy_(v)


def adapt(
    model, collator, rows: list[dict], params: list, steps: int, lr: float, batch_size: int = 8
) -> float:
    """`steps` plain gradient steps of the fusion parameters on `rows` (MAML's inner loop); returns
    the last loss. The caller restores the parameters afterwards."""
    loss = float("nan")
    flags = [p.requires_grad for p in params]
    for p in params:  # a model loaded for evaluation has them frozen
        p.requires_grad_(True)
    for _ in range(steps):
        for s in range(0, len(rows), batch_size):
            with torch.enable_grad():
                out = model(**collator(rows[s : s + batch_size])).loss
                grads = torch.autograd.grad(out, params, allow_unused=True)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    if g is not None:
                        p.sub_(lr * g)
            loss = float(out)
    for p, f in zip(params, flags, strict=True):
        p.requires_grad_(f)
    return loss


def bias_key(qtype: str, question: str, answer: str) -> str:
    """What a calibration bias is kept per: the answer, and for verify questions the question too
    (each of an episode's questions leans to "yes" or "no" in its own way)."""
    return f"{question}|{answer}" if qtype.endswith("verify") else answer


def fit_answer_bias(scored: list[tuple[list[str], list[float], str]], l2: float = 0.01) -> dict[str, float]:  # fmt: skip
    """Per answer key, the bias b that maximises the mean log-likelihood of the support set's
    answers under softmax(score + b) over each sample's candidates, minus l2/2 |b|^2: a
    conditional logit with the model's scores as a fixed offset and only intercepts learned.
    `scored`: per support sample, (candidate keys, their log-likelihoods, the gold key). With
    one input for every sample (a blank ECG) the fitted biases make each sample's candidates
    score alike where the support gives them alike."""
    return fit_answer_readout(scored, l2).bias


@dataclass
class AnswerReadout:
    """What the support set fits (`calibrate`): per answer key a bias, with `readout` a weight
    vector per key over the standardised answer state (`answer_states`), with `candidate_readout`
    one weight vector over the standardised state of the candidate's own answer
    (`candidate_states`); `shift` is what a candidate's log-likelihood gains."""

    bias: dict[str, float]
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    mean: np.ndarray | None = None  # the support's states' mean and scale (standardisation)
    scale: np.ndarray | None = None
    shared: np.ndarray | None = None  # the candidate readout's weights
    candidate_mean: np.ndarray | None = None  # the support's candidates' states' mean and scale
    candidate_scale: np.ndarray | None = None

    def shift(
        self, key: str, state: np.ndarray | None = None, candidate_state: np.ndarray | None = None
    ) -> float:
        out = self.bias.get(key, 0.0)  # (0 for an answer the support set never offered)
        if key in self.weights:
            if state is None:
                raise ValueError(f"the readout of {key!r} needs the query's answer state")
            out += float(self.weights[key] @ _standard(state, self.mean, self.scale))
        if self.shared is not None:
            if candidate_state is None:
                raise ValueError(f"the candidate readout needs the state of candidate {key!r}")
            out += float(
                self.shared @ _standard(candidate_state, self.candidate_mean, self.candidate_scale)
            )
        return out


def _standard(x, mean, scale) -> np.ndarray:
    return (np.asarray(x, np.float64) - mean) / scale


def _mean_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The support's mean and scale of states (rows of x). The scale's floor (relative to the
    states' size) keeps float noise between identical inputs (a blank ECG batched with different
    padding) from being blown up to a signal."""
    return x.mean(0), x.std(0) + 1e-3 * float(np.abs(x).mean()) + 1e-12


def fit_answer_readout(scored: list[tuple[list[str], list[float], str]], l2: float = 0.01,
                       states: list[np.ndarray] | None = None, readout_l2: float = 1.0,
                       candidate_states: list[np.ndarray] | None = None,
                       candidate_l2: float = 0.1) -> AnswerReadout:  # fmt: skip
    """fit_answer_bias, and with `states` (per support sample, the frozen model's answer state:
    `answer_states`) also a weight vector w per answer key: softmax(score + b + w . z) over each
    sample's candidates, z the state standardised over the support set, the objective minus
    l2/2 |b|^2 + readout_l2/2 |w|^2. The bias learns where the model's answer scores lean on the
    episode's classes, the weights what of the state the LM head's answer rows miss (as if the
    support set adapted those rows; the LLM stays frozen). Identical states (a blank ECG) give
    identical shifts. With `candidate_states` (per support sample, an array of its candidates'
    states in the order of its keys: `candidate_states`), one more weight vector v shared by all
    candidates adds v . u to each candidate's score, u its state standardised over the support's
    candidates, penalised candidate_l2/2 |v|^2. (Written here: scikit-learn's logistic regression
    has no per-sample candidate sets with fixed offsets.)"""
    if not scored:
        return AnswerReadout({})
    keys = sorted({k for ks, _, _ in scored for k in ks})
    at = {k: i for i, k in enumerate(keys)}
    idx = [torch.tensor([at[k] for k in ks]) for ks, _, _ in scored]
    ll = [torch.tensor(v, dtype=torch.float64) for _, v, _ in scored]
    gold = [ks.index(g) for ks, _, g in scored]
    b = torch.zeros(len(keys), dtype=torch.float64, requires_grad=True)
    params, mean, scale, cmean, cscale = [b], None, None, None, None
    w = v = None
    if states is not None:
        if len(states) != len(scored):
            raise ValueError(f"{len(states)} answer states for {len(scored)} support samples")
        x = np.stack([np.asarray(s, np.float64) for s in states])
        mean, scale = _mean_scale(x)
        z = torch.tensor((x - mean) / scale)
        w = torch.zeros(len(keys), x.shape[1], dtype=torch.float64, requires_grad=True)
        params.append(w)
    if candidate_states is not None:
        if len(candidate_states) != len(scored) or any(
            len(c) != len(ks) for c, (ks, _, _) in zip(candidate_states, scored, strict=False)
        ):
            raise ValueError("candidate states: one array per support sample, a row per candidate")
        cs = [np.asarray(c, np.float64) for c in candidate_states]
        cmean, cscale = _mean_scale(np.concatenate(cs))
        u = [torch.tensor((c - cmean) / cscale) for c in cs]
        v = torch.zeros(len(cmean), dtype=torch.float64, requires_grad=True)
        params.append(v)
    opt = torch.optim.LBFGS(
        params,
        lr=1,
        max_iter=500,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        nll = 0.0
        for n, (i, lv, g) in enumerate(zip(idx, ll, gold, strict=True)):
            s = lv + b[i]
            if w is not None:
                s = s + w[i] @ z[n]
            if v is not None:
                s = s + u[n] @ v
            nll = nll + torch.logsumexp(s, 0) - s[g]
        loss = nll / len(scored) + l2 / 2 * (b * b).sum()
        if w is not None:
            loss = loss + readout_l2 / 2 * (w * w).sum()
        if v is not None:
            loss = loss + candidate_l2 / 2 * (v * v).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    bias = {k: float(c) for k, c in zip(keys, b.detach(), strict=True)}
    weights = {} if w is None else {k: c.numpy() for k, c in zip(keys, w.detach(), strict=True)}
    return AnswerReadout(bias, weights, mean, scale, None if v is None else v.detach().numpy(),
                         cmean, cscale)  # fmt: skip


def _question_of(row: dict) -> str:
    return row["messages"][0]["content"][-1]["text"]


def bias_shift(qtype: str, rows: list[dict], bias: Mapping[str, float] | AnswerReadout,
               states: Mapping[str, np.ndarray] | None = None,
               candidate_states: list[np.ndarray] | None = None) -> list[float]:  # fmt: skip
    """Per candidate row (episode_rows), what its answer gains: the bias its answer takes (0 for
    an answer the support set never offered), with a readout its weights over the row's answer
    state (`states`: per row id, from answer_states), with a candidate readout the shared weights
    over the row's own candidate state (`candidate_states`: per row, from candidate_states)."""
    if not isinstance(bias, AnswerReadout):
        bias = AnswerReadout(dict(bias))
    return [bias.shift(bias_key(qtype, _question_of(r), r["candidate"]),
                       None if states is None else states[r["id"]],
                       None if candidate_states is None else candidate_states[j])
            for j, r in enumerate(rows)]  # fmt: skip


@torch.no_grad()
def answer_states(model, collator, rows: list[dict], batch_size: int) -> dict[str, np.ndarray]:
    """Per row id (a sample's candidate rows share it), the model's last-layer hidden state at
    the position that predicts the answer's first token: what its LM head reads to answer."""
    first: dict[str, dict] = {}
    for r in rows:
        first.setdefault(r["id"], r)
    one = list(first.values())
    out: dict[str, np.ndarray] = {}
    for s in range(0, len(one), batch_size):
        batch = collator.candidate_batch(one[s : s + batch_size], {})
        labels = batch.pop("labels")
        # (the last layer only: logits_to_keep=1 keeps the vocabulary projection to one position)
        hidden = model(**batch, output_hidden_states=True, logits_to_keep=1).hidden_states[-1]
        at = (labels != -100).int().argmax(1) - 1  # the token before the answer's first
        for j, r in enumerate(one[s : s + batch_size]):
            out[r["id"]] = hidden[j, at[j]].float().cpu().numpy()
    return out


@torch.no_grad()
def candidate_states(model, collator, rows: list[dict], batch_size: int) -> list[np.ndarray]:
    """Per row (a candidate answer), the model's last-layer hidden state averaged over the
    answer's own tokens (the span its log-likelihood sums): how the model reads that answer to
    the question and ECG. Each row is run whole (its prompt too), batch_size rows a pass."""
    cache: dict[str, dict] = {}
    out: list[np.ndarray] = []
    for s in range(0, len(rows), batch_size):
        batch = collator.candidate_batch(rows[s : s + batch_size], cache)
        span = (batch.pop("labels") != -100).unsqueeze(-1)
        hidden = model(**batch, output_hidden_states=True, logits_to_keep=1).hidden_states[-1]
        mean = (hidden.float() * span).sum(1) / span.sum(1).clamp(min=1)
        out.extend(mean.cpu().numpy().astype(np.float64))
    return out


def readout_states(model, collator, rows: list[dict], settings: FewShotSettings, batch_size: int):
    """What the settings' readouts read of candidate rows: (answer states per row id or None,
    candidate states per row or None)."""
    return (answer_states(model, collator, rows, batch_size) if settings.readout else None,
            candidate_states(model, collator, rows, batch_size) if settings.candidate_readout else None)  # fmt: skip


def _support_as_queries(ep: Episode, train_ds, leads: int) -> list[dict]:
    """The support samples' candidate rows, each asked alone as a query is (calibrate)."""
    as_queries = Episode(ep.question_type, ep.classes, [], ep.support, ep.support_candidates,
                         query_questions=ep.support_questions)  # fmt: skip
    return episode_rows(as_queries, train_ds, train_ds, leads)


@torch.no_grad()
def support_bias(model, collator, ep: Episode, train_ds, leads: int, batch_size: int, l2: float) -> dict[str, float]:  # fmt: skip
    """The answer bias an episode's support set fits (`calibrate`): each support sample asked
    alone over its candidates (as a query is), its answer known; fit_answer_bias."""
    settings = FewShotSettings(leads=leads, calibrate_l2=l2)
    return support_readout(model, collator, ep, train_ds, settings, batch_size).bias


@torch.no_grad()
def support_readout(model, collator, ep: Episode, train_ds, settings: FewShotSettings, batch_size: int) -> AnswerReadout:  # fmt: skip
    """What an episode's support set fits (`calibrate`): each support sample asked alone over its
    candidates (as a query is), its answer known; the bias, with `settings.readout` the
    answer-state weights, with `settings.candidate_readout` the candidate-state weights
    (fit_answer_readout)."""
    from .answer import loglik_batch

    rows = _support_as_queries(ep, train_ds, settings.leads)
    scored = _scored(
        ep.question_type, rows, loglik_batch(model, collator, rows, batch_size), ids=True
    )
    states, cands = readout_states(model, collator, rows, settings, batch_size)
    per_id: dict[str, list[np.ndarray]] = defaultdict(list)
    if cands is not None:  # per sample, its candidates' states in its rows' order
        for r, c in zip(rows, cands, strict=True):
            per_id[r["id"]].append(c)
    return fit_answer_readout(
        [t[:3] for t in scored],
        settings.calibrate_l2,
        None if states is None else [states[t[3]] for t in scored],
        settings.readout_l2,
        None if cands is None else [np.stack(per_id[t[3]]) for t in scored],
        settings.candidate_l2,
    )


def _interval(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (float("nan"), float("nan"))
    from scipy import stats

    m, se = float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(len(values)))
    h = se * float(stats.t.ppf(0.975, len(values) - 1))
    return (m - h, m + h)


def paired_difference(a: list[float], b: list[float]) -> dict[str, Any] | None:
    """Mean of a - b over episodes with its 95% t-interval (None unless both have one value per
    episode of the same episodes). The K-shot, zero-shot and blank runs of one settings ask the
    same queries of the same episodes, so their difference is paired: its interval is what says
    whether K-shot is above zero-shot, which two overlapping per-run intervals cannot."""
    if not a or len(a) != len(b):
        return None
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    lo, hi = _interval(d.tolist())
    return {"difference": float(d.mean()), "ci95": [lo, hi], "episodes": len(d)}


def _scored(qtype: str, rows: list[dict], ll: list[float], ids: bool = False) -> list[tuple]:
    """Candidate rows and their scores (consecutive per sample id) as fit_answer_bias's input:
    (candidate keys, scores, gold key), and with `ids` the sample's row id after them."""
    by: dict[str, list[tuple[dict, float]]] = defaultdict(list)
    for r, v in zip(rows, ll, strict=True):
        by[r["id"]].append((r, v))
    out = []
    for group in by.values():
        q, gold = _question_of(group[0][0]), group[0][0]["gold"]
        keys = [bias_key(qtype, q, r["candidate"]) for r, _ in group]
        if bias_key(qtype, q, gold) in keys:  # (else its answer is not offered: none such is built)
            out.append((keys, [v for _, v in group], bias_key(qtype, q, gold), *([group[0][0]["id"]] if ids else [])))  # fmt: skip
    return out


@torch.no_grad()
def run_fewshot(model, processor, data_dir: str | Path, out: str | Path, settings: FewShotSettings,
                blank_ecg: bool = False, batch_size: int = 4, progress: bool = True) -> dict:  # fmt: skip
    """Accuracy per question type over `settings.episodes` episodes (fewshot.json in `out`)."""
    from tqdm.auto import tqdm

    from ..atomic import write_text
    from ..data.collator import EcgCollator
    from ..data.dataset import EcgInstructionDataset
    from .answer import loglik_batch

    train_ds, test_ds = (
        EcgInstructionDataset(data_dir, "train"),
        EcgInstructionDataset(data_dir, "validation" if settings.selection else "test"),
    )
    train, test = train_ds.samples.to_list(), test_ds.samples.to_list()
    statements = record_statements(train_ds)
    collator = EcgCollator(processor, blank_ecg=blank_ecg, max_length=1 << 16)
    was = model.training
    model.eval()
    results: dict[str, Any] = {}
    for qtype in settings.question_types:
        why: dict = {}
        eps = build_episodes(train, test, settings, qtype, meta_train=settings.selection, why=why,
                             statements=statements)  # fmt: skip
        if not eps:
            note = f"too few {'meta-train' if settings.selection else 'meta-test'} classes with enough samples"
            if why.get("paired_choose"):
                note = (f"{why['paired_choose']} {settings.n_way}-way choose episode(s) drawn lacked samples whose "
                        f"record has one class and lacks another of the episode (paired_choose): a bigger build "
                        f"or fewer ways")  # fmt: skip
            if "paired" in why:
                note = (f"{why['paired']} meta-test question(s) with both a yes and a no class of enough samples; "
                        f"{settings.n_way}-way verify episodes need {settings.n_way // 2} (paired_verify)")  # fmt: skip
            if why.get("unbalanced"):
                note = (f"no {settings.n_way}-way episode with even answers: the meta-test pool's "
                        f"classes per answer are {why['answers']} (fewer ways, a bigger build, or "
                        f"FewShotSettings(balanced=False))")  # fmt: skip
            results[qtype] = {"episodes": 0, "note": note}
            continue
        accs, chance, majority = [], [], []
        for ep in tqdm(eps, desc=f"{qtype} {settings.n_way}-way {settings.k_shot}-shot", unit="ep",
                       disable=not progress):  # fmt: skip
            if settings.adapt_steps and ep.support:  # adapted on the support set, then asked alone
                params = fusion_parameters(model)
                saved = [p.detach().clone() for p in params]
                adapt(model, collator, sample_rows(ep.support, train_ds, settings.leads, ep.support_questions),
                      params, settings.adapt_steps, settings.adapt_lr, batch_size)  # fmt: skip
                rows = alone_rows(ep, train_ds, test_ds, settings.leads)
                ll = loglik_batch(model, collator, rows, batch_size)
                with torch.no_grad():
                    for p, v in zip(params, saved, strict=True):
                        p.copy_(v)
            elif settings.calibrate and ep.support:  # asked alone, scores shifted by a fitted bias
                fitted = support_readout(model, collator, ep, train_ds, settings, batch_size)
                rows = alone_rows(ep, train_ds, test_ds, settings.leads)
                ll = loglik_batch(model, collator, rows, batch_size)
                states, cands = readout_states(model, collator, rows, settings, batch_size)
                ll = [v + b for v, b in zip(ll, bias_shift(qtype, rows, fitted, states, cands), strict=True)]  # fmt: skip
            else:
                rows = episode_rows(ep, train_ds, test_ds, settings.leads)
                ll = loglik_batch(model, collator, rows, batch_size)
            by_q: dict[str, list[tuple[float, dict]]] = defaultdict(list)
            for r, v in zip(rows, ll, strict=True):
                by_q[r["id"]].append((v, r))
            ok = [
                max(c, key=lambda t: t[0])[1]["candidate"] == c[0][1]["gold"] for c in by_q.values()
            ]
            accs.append(float(np.mean(ok)))
            chance.append(float(np.mean([1 / len(c) for c in by_q.values()])))
            # what one constant answer scores on this episode's queries: 1/candidates hides an
            # episode whose classes lean to one answer (four "no" verify classes of five)
            golds = Counter(c[0][1]["gold"] for c in by_q.values())
            majority.append(max(golds.values()) / sum(golds.values()))
        lo, hi = _interval(accs)
        results[qtype] = {"accuracy": float(np.mean(accs)), "ci95": [lo, hi], "chance": float(np.mean(chance)),
                          "majority": float(np.mean(majority)), "episodes": len(eps), "per_episode": accs,
                          "left_out_unbalanced": why.get("unbalanced", 0),
                          "left_out_unpaired": why.get("paired_choose", 0),
                          "classes": len(eps[0].classes),
                          "queries": sum(len(ep.queries) for ep in eps)}  # fmt: skip
    model.train(was)
    report = {"settings": asdict(settings), "blank_ecg": blank_ecg, "results": results}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "fewshot.json", json.dumps(report, indent=1))
    return report


def fewshot_table(model, processor, data_dir: str | Path, out: str | Path, runs: list[FewShotSettings],
                  ablation: bool = False, batch_size: int = 4, progress: bool = True) -> dict:  # fmt: skip
    """Each settings' K-shot run, its zero-shot run on the same queries and, with `ablation`, the
    K-shot run with every ECG blanked, into OUT/<leads>leads/{kshot,zeroshot,blank}; one table
    (accuracy [95% interval] per question type, chance, majority level; then K-shot minus each
    other run, paired over the episodes, with its interval) in OUT/fewshot.json."""
    from dataclasses import replace

    from ..atomic import write_text

    def line(leads: str, label: str, cells: list[str]) -> str:
        return f"{leads:>5s} {label:9s} " + " ".join(f"{c:>28s}" for c in cells)

    out = Path(out)
    rows, diffs = [], []
    lines = [line("leads", "run", list(runs[0].question_types))]
    for s in runs:
        base = out / f"{s.leads}leads"
        variants = [("kshot", s, False), ("zeroshot", replace(s, k_shot=0), False)]
        if ablation:
            variants.append(("blank", s, True))
        for name, st, blank in variants:
            r = run_fewshot(model, processor, data_dir, base / name, st, blank_ecg=blank,
                            batch_size=batch_size, progress=progress)  # fmt: skip
            rows.append(
                {"leads": s.leads, "run": name, "k_shot": st.k_shot, "n_way": st.n_way, **r}
            )
            cells = []
            for t in st.question_types:
                v = r["results"].get(t, {})
                cells.append(f"{v['accuracy']:.3f} [{v['ci95'][0]:.2f}-{v['ci95'][1]:.2f}] c{v['chance']:.2f} "
                             f"m{v['majority']:.2f}" if "accuracy" in v
                             else "uneven answers (note)" if "even answers" in v.get("note", "") else "-")  # fmt: skip
            lines.append(
                line(str(s.leads), f"{st.k_shot}-shot" + (" blank" if blank else ""), cells)
            )
        got = {r["run"]: r["results"] for r in rows[-len(variants) :]}
        for other in [v[0] for v in variants[1:]]:
            res = {t: paired_difference(got["kshot"].get(t, {}).get("per_episode", []),
                                        got[other].get(t, {}).get("per_episode", []))
                   for t in s.question_types}  # fmt: skip
            diffs.append({"leads": s.leads, "minus": other, "results": res})
            cells = [
                "-" if d is None
                else f"{d['difference']:+.3f} [{d['ci95'][0]:+.2f} {d['ci95'][1]:+.2f}]"
                if np.isfinite(d["ci95"][0]) else f"{d['difference']:+.3f}"
                for d in res.values()
            ]  # fmt: skip
            lines.append(
                line(str(s.leads), "- " + ("0-shot" if other == "zeroshot" else other), cells)
            )
    table = "\n".join(lines)
    report = {"runs": rows, "differences": diffs, "table": table}
    write_text(out / "fewshot.json", json.dumps(report, indent=1))
    fewshot_plot(rows, out / "fewshot.png")
    return report


def how_answered(settings: Mapping[str, Any]) -> str:
    """How a run used its support set, in words (FewShotSettings as a dict)."""
    if settings.get("adapt_steps"):
        return f"adapted ({settings['adapt_steps']} steps)"
    readouts = [name for key, name in (("readout", "answer-state"), ("candidate_readout", "candidate"))
                if settings.get(key)]  # fmt: skip
    if readouts:
        return f"calibrated on the support set with {' and '.join(readouts)} readout" + "s" * (len(readouts) > 1)  # fmt: skip
    return "calibrated on the support set" if settings.get("calibrate") else "in context"


def fewshot_plot(rows: list[dict], path: str | Path) -> Path:
    """One panel per question type: accuracy of each run (K-shot, zero-shot, blank) per lead
    subset with its 95% interval over episodes, and the majority level dashed (fewshot_table's
    runs; written whole, then renamed)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import write_bytes

    types = list(rows[0]["settings"]["question_types"]) if rows else []
    leads = sorted({r["leads"] for r in rows}, reverse=True)
    names = list(dict.fromkeys(r["run"] for r in rows))
    colors = {"kshot": "#4c78a8", "zeroshot": "#9ecae9", "blank": "#bbbbbb"}
    fig, axes = plt.subplots(
        1, max(1, len(types)), figsize=(4.2 * max(1, len(types)), 3.4), squeeze=False
    )
    w = 0.8 / max(1, len(names))
    for ax, t in zip(axes[0], types, strict=False):
        for j, name in enumerate(names):
            xs, ys, err = [], [], [[], []]
            for i, ld in enumerate(leads):
                r = next((r for r in rows if r["leads"] == ld and r["run"] == name), None)
                v = (r or {}).get("results", {}).get(t, {})
                if "accuracy" not in v:
                    continue
                lo, hi = v["ci95"]
                xs.append(i + (j - (len(names) - 1) / 2) * w)
                ys.append(v["accuracy"])
                err[0].append(v["accuracy"] - lo if np.isfinite(lo) else 0.0)
                err[1].append(hi - v["accuracy"] if np.isfinite(hi) else 0.0)
                ax.hlines(
                    v["majority"], i - 0.4, i + 0.4, colors="#d62728", linestyles="--", lw=0.8
                )
            label = {"kshot": "K-shot", "zeroshot": "0-shot", "blank": "K-shot, blank ECG"}.get(
                name, name
            )
            ax.bar(xs, ys, w, yerr=err, capsize=2, color=colors.get(name, "#888"), label=label)
        ax.set_xticks(range(len(leads)), [f"{ld} lead{'s' if ld > 1 else ''}" for ld in leads])
        ax.set_ylim(0, 1)
        ax.set_title(t, fontsize=10)
        ax.set_ylabel("accuracy")
    if types:
        axes[0][0].legend(fontsize=7, loc="lower left")
        fig.suptitle(f"{rows[0]['n_way']}-way {rows[0]['k_shot']}-shot, {how_answered(rows[0]['settings'])} "
                     "(dashed: majority level)", fontsize=10)  # fmt: skip
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return write_bytes(path, buf.getvalue())
