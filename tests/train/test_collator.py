"""Labels on assistant turns only, placeholder expansion, truncation rules, length grouping."""

from __future__ import annotations

import pytest
import torch

from ecgllm.data.collator import EcgCollator, length_grouped_order, padding_fraction
from ecgllm.data.dataset import EcgInstructionDataset
from ecgllm.model import build_model


@pytest.fixture(scope="module")
def proc():
    return build_model()[1]


def test_labels_cover_exactly_the_assistant_replies(instruct, proc):
    ds = EcgInstructionDataset(instruct, "train")
    multi = next(i for i in range(len(ds)) if ds.samples[i]["task"] == "multiturn")
    rows = [ds[0], ds[multi]]
    batch = EcgCollator(proc)(rows)
    tok = proc.tokenizer
    for r, row in enumerate(rows):
        lab = batch["labels"][r]
        supervised = tok.decode(lab[lab != -100])
        replies = [m["content"][0]["text"] for m in row["messages"] if m["role"] == "assistant"]
        assert supervised == "".join(f"{t}<|end|>\n" for t in replies)
        ids = batch["input_ids"][r]
        n_ecg = int((ids == tok.convert_tokens_to_ids("<ecg>")).sum())
        assert n_ecg == len(row["record_ids"]) * proc.num_ecg_tokens
        assert (lab[ids == tok.convert_tokens_to_ids("<ecg>")] == -100).all()
    assert batch["ecg_values"].shape[0] == 2 and batch["pixel_values"].shape[0] == 2
    assert batch["attention_mask"][0].sum() == (batch["input_ids"][0] != tok.pad_token_id).sum()


def test_truncation_never_cuts_a_placeholder_run(instruct, proc):
    ds = EcgInstructionDataset(instruct, "train")
    col = EcgCollator(proc, max_length=5)  # inside the first ECG's run of 25 tokens
    with pytest.raises(ValueError, match="every sample of the batch was dropped"):
        col([ds[0]])
    assert col.dropped["placeholder_run_cut"] == 1


def test_a_batch_without_targets_is_an_error(proc):
    col = EcgCollator(proc)
    row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                        {"role": "assistant", "content": [{"type": "text", "text": "x"}]}],
           "record_ids": [], "modalities": []}  # fmt: skip
    proc.chat_template = proc.chat_template.replace("{% generation %}", "").replace(
        "{% endgeneration %}", ""
    )
    try:
        with pytest.raises(ValueError, match="assistant spans are missing"):
            col([row, row])
    finally:
        proc.chat_template = build_model()[1].chat_template


def test_length_grouping_cuts_padding():
    g = torch.Generator().manual_seed(0)
    lengths = (torch.randint(20, 400, (2000,), generator=g)).tolist()
    plain = list(range(len(lengths)))
    grouped = length_grouped_order(lengths, 8, seed=1)
    assert sorted(grouped) == plain and grouped == length_grouped_order(lengths, 8, seed=1)
    assert padding_fraction(lengths, grouped, 8) < 0.25 * padding_fraction(lengths, plain, 8)
