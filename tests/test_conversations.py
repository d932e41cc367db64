"""Instruction tuning trains every assistant turn of a conversation in one sequence, each
after its history, with the media placeholder where the data put it."""

from __future__ import annotations

import torch

from onellm import OneLLM
from onellm.data.manifest import Sample
from onellm.training.datamodule import TextForSamples

TURNS = [
    ("What is in the picture?", "a red circle"),
    ("Where is it?", "on the left"),
    ("What colour is the background?", "white"),
]


def _labelled_text(model: OneLLM, batch: dict, row: int = 0) -> list[str]:
    """The labelled runs of one row, decoded run by run (EOS kept)."""
    labels = batch["labels"][row]
    runs, current = [], []
    for token in labels.tolist() + [-100]:
        if token == -100:
            if current:
                runs.append(model.processor.tokenizer.decode(current))
            current = []
        else:
            current.append(token)
    return runs


def test_three_turns_train_every_answer_after_its_history(tiny_model: OneLLM) -> None:
    processor = tiny_model.processor
    eos = processor.tokenizer.eos_token
    sample = Sample(
        id="c1",
        modality="image",
        files=["x.png"],
        conversations=[
            {"from": "human" if i % 2 == 0 else "gpt", "value": text} for turn in TURNS for i, text in enumerate(turn)
        ],
    )
    batch = TextForSamples(processor, "instruct")([(sample, [torch.zeros(3, 56, 56)], 0.99)])
    # all three answers, each closed by the end-of-text token, and nothing else
    assert _labelled_text(tiny_model, batch) == [f"{answer}{eos}" for _, answer in TURNS]
    # the third answer's context is exactly the prompt the model is asked with at inference
    # when the first two turns are its history (the demo's chat)
    asked = processor([processor.prompt(TURNS[2][0], history=TURNS[:2])])
    n = asked["input_ids"].shape[1]
    assert torch.equal(batch["input_ids"][0, :n], asked["input_ids"][0])
    assert torch.equal(batch["modality_mask"][0, :n], asked["modality_mask"][0])
    text = processor.tokenizer.decode(batch["input_ids"][0, :n][~batch["modality_mask"][0, :n]])
    assert all(q in text for q, _ in TURNS) and all(a in text for a, _ in TURNS[:2])
    # one placeholder run, at the start (the data put none in its text)
    first = int(batch["modality_mask"][0].nonzero()[0])
    assert first <= 1 and int(batch["modality_mask"][0].sum()) == processor.num_modality_tokens
    # the loss reaches every answer: the model trains on it
    out = tiny_model(
        **{k: batch[k] for k in ("input_ids", "attention_mask", "modality_mask", "labels")},
        inputs=batch["inputs"],
        loss_only=True,
    )
    assert out.logits.shape[0] == sum(
        len(processor.tokenizer(a + eos, add_special_tokens=False)["input_ids"]) for _, a in TURNS
    )


def test_media_tag_stays_where_the_data_put_it(tiny_model: OneLLM) -> None:
    processor = tiny_model.processor
    turns = [("Hello, can you help me?", "yes"), ("<image>\nWhat shape is this?", "a circle")]
    sample = Sample(
        id="c2",
        modality="image",
        files=["x.png"],
        conversations=[
            {"from": "human" if i % 2 == 0 else "gpt", "value": text} for turn in turns for i, text in enumerate(turn)
        ],
    )
    batch = TextForSamples(processor, "instruct")([(sample, [torch.zeros(3, 56, 56)], 0.99)])
    ids, mask = batch["input_ids"][0], batch["modality_mask"][0]
    first = int(mask.nonzero()[0])
    before = processor.tokenizer.decode(ids[:first])
    assert "Hello, can you help me?" in before and "yes" in before and "What shape" not in before
    assert int(mask.sum()) == processor.num_modality_tokens
    # a tag that matches no input one to one leaves the text; the input then leads
    sample.conversations[2]["value"] = "<image> or <image>? What shape is this?"
    batch = TextForSamples(processor, "instruct")([(sample, [torch.zeros(3, 56, 56)], 0.99)])
    assert int(batch["modality_mask"][0].nonzero()[0]) <= 1
    assert int(batch["modality_mask"][0].sum()) == processor.num_modality_tokens


def test_qa_pairs_of_a_sample_pack_into_one_sequence(tiny_model: OneLLM) -> None:
    processor = tiny_model.processor
    sample = Sample(
        id="q",
        modality="image",
        files=["x.png"],
        caption="a red circle",
        qa=[{"question": q, "answer": a} for q, a in TURNS[1:]],
    )
    collate = TextForSamples(processor, "instruct")
    eos = processor.tokenizer.eos_token
    answers = [f"{a}{eos}" for _, a in TURNS[1:]]
    # Picks below 1/3 choose the QA pairs, each in an order of its own: every pair is trained,
    # and not always the same one first (the model must read the question it answers).
    orders = [_labelled_text(tiny_model, collate([(sample, [torch.zeros(3, 56, 56)], p / 100)])) for p in range(33)]
    assert all(sorted(order) == sorted(answers) for order in orders)
    assert {order[0] for order in orders} == set(answers)
    caption = collate([(sample, [torch.zeros(3, 56, 56)], 0.99)])  # the last: the caption request
    assert _labelled_text(tiny_model, caption) == [f"a red circle{eos}"]
