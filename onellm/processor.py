"""Text side of a sample: prompt templates and the modality placeholder run.

A prompt carries one `<modality>` marker; it becomes Q + 2 placeholder positions (start tag,
Q tokens, end tag) that the model overwrites in `inputs_embeds`, so padding, batching,
chat templates and `generate()` work unchanged.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import PreTrainedTokenizerBase

PLACEHOLDER = "<modality>"
ONELLM_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
ONELLM_STOP = "###"


class OneLLMProcessor:
    def __init__(
        self,
        text_tokenizer: PreTrainedTokenizerBase,
        num_modality_tokens: int,
        prompt_template: str = "onellm",
        preprocessing: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.tokenizer = text_tokenizer
        self.num_modality_tokens = num_modality_tokens
        self.prompt_template = prompt_template
        self.preprocessing = preprocessing or {}
        if prompt_template == "chat" and not getattr(text_tokenizer, "chat_template", None):
            raise ValueError("prompt_template 'chat' needs a text tokenizer with a chat template")

    def prompt(self, question: str, history: Sequence[tuple[str, str]] = ()) -> str:
        """The evaluation / instruction prompt for one question about one modality input,
        after the earlier (question, answer) turns of `history` (the demo's chat); the input's
        placeholder leads the first turn."""
        if self.prompt_template == "chat":
            messages = []
            for asked, answered in history:
                messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
            messages.append({"role": "user", "content": question})
            messages[0]["content"] = f"{PLACEHOLDER}\n{messages[0]['content']}"
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        turns = "".join(f"### Human: {asked}\n### Assistant: {answered}\n" for asked, answered in history)
        return f"{PLACEHOLDER}{ONELLM_SYSTEM}\n\n{turns}### Human: {question}\n### Assistant:"

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def encode(self, text: str) -> tuple[list[int], list[bool]]:
        parts = text.split(PLACEHOLDER)
        if len(parts) > 2:
            raise ValueError(f"a prompt holds at most one {PLACEHOLDER} marker: {text[:80]!r}")
        bos = self.tokenizer.bos_token_id
        ids = [bos] if bos is not None and self.prompt_template == "onellm" else []
        mask = [False] * len(ids)
        ids += self._ids(parts[0])
        mask += [False] * (len(ids) - len(mask))
        if len(parts) == 2:
            filler = self.tokenizer.pad_token_id
            ids += [filler] * self.num_modality_tokens
            mask += [True] * self.num_modality_tokens
            ids += self._ids(parts[1])
            mask += [False] * (len(ids) - len(mask))
        return ids, mask

    def __call__(
        self, prompts: list[str], answers: list[str] | None = None, padding_side: str | None = None
    ) -> dict[str, torch.Tensor]:
        """Batch of prompts (and answers, for training) -> input_ids, attention_mask,
        modality_mask and, with answers, labels (-100 everywhere but the answer and EOS).

        Generation pads on the left, training on the right, unless told otherwise."""
        if answers is not None and len(answers) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
        side = padding_side or ("right" if answers is not None else "left")
        rows = []
        for i, text in enumerate(prompts):
            ids, mask = self.encode(text)
            labels = [-100] * len(ids)
            if answers is not None:
                answer = self._ids(answers[i]) + [self.tokenizer.eos_token_id]
                ids, mask, labels = ids + answer, mask + [False] * len(answer), labels + answer
            rows.append((ids, mask, labels))
        length = max(len(r[0]) for r in rows)
        pad = self.tokenizer.pad_token_id
        out = {k: torch.full((len(rows), length), v, dtype=torch.long) for k, v in
               (("input_ids", pad), ("attention_mask", 0), ("labels", -100))}
        out["modality_mask"] = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, (ids, mask, labels) in enumerate(rows):
            span = slice(length - len(ids), length) if side == "left" else slice(0, len(ids))
            out["input_ids"][i, span] = torch.tensor(ids)
            out["attention_mask"][i, span] = 1
            out["modality_mask"][i, span] = torch.tensor(mask)
            out["labels"][i, span] = torch.tensor(labels)
        if answers is None:
            del out["labels"]
        return out

    def decode(self, token_ids: torch.Tensor) -> list[str]:
        texts = self.tokenizer.batch_decode(token_ids, skip_special_tokens=True)
        if self.prompt_template == "onellm":
            texts = [t.split(ONELLM_STOP)[0] for t in texts]
        return [t.strip() for t in texts]

    def to_dict(self) -> dict[str, Any]:
        return {
            "processor_class": type(self).__name__,
            "num_modality_tokens": self.num_modality_tokens,
            "prompt_template": self.prompt_template,
            "preprocessing": self.preprocessing,
        }

    def save_pretrained(self, directory: str | Path) -> None:
        (Path(directory) / "processor_config.json").write_text(json.dumps(self.to_dict(), indent=2))
