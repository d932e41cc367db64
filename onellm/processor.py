"""Text side of a sample: prompt templates and the modality placeholder runs.

A prompt carries one marker per input: `<video>`, `<audio>`, ... naming the input's modality,
or `<modality>` for whatever input comes next. Each becomes Q + 2 placeholder positions
(start tag, Q tokens, end tag) that the model overwrites in `inputs_embeds`, so padding,
batching, chat templates and `generate()` work unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .config import Prompting
from .model.modality_batch import ModalityBatch

PLACEHOLDER = "<modality>"
PROCESSOR_CONFIG = "processor_config.json"
TEXT_TOKENIZER_DIR = "llm"
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

    @staticmethod
    def placeholders(modalities: Sequence[str]) -> str:
        """The markers for a sample's inputs: `<modality>` for a single input (the published
        prompts' form), one named marker per input otherwise."""
        if len(modalities) == 1:
            return PLACEHOLDER
        return "".join(f"<{m}>" for m in modalities)

    def prompt(
        self, question: str, history: Sequence[tuple[str, str]] = (), modalities: Sequence[str] = ("modality",)
    ) -> str:
        """The evaluation / instruction prompt for one question about the inputs of
        `modalities` (default: one input), after the earlier (question, answer) turns of
        `history` (the demo's chat, or the turns before it when training a conversation).
        The inputs' placeholders lead the first turn unless a turn already holds them (where
        the data put them). Each earlier answer ends with the end-of-text token, as training
        ends every answer, so a conversation's prompts extend one another (see `segments`)."""
        asked = [q for q, _ in history] + [question]
        markers = self.placeholders(modalities) if modalities and not any(self.markers(q) for q in asked) else ""
        if self.prompt_template == "chat":
            messages = []
            for q, answered in history:
                messages += [{"role": "user", "content": q}, {"role": "assistant", "content": answered}]
            messages.append({"role": "user", "content": question})
            if markers:
                messages[0]["content"] = f"{markers}\n{messages[0]['content']}"
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        eos = self.tokenizer.eos_token or ""
        turns = "".join(f"### Human: {q}\n### Assistant:{answered}{eos}\n" for q, answered in history)
        return f"{markers}{ONELLM_SYSTEM}\n\n{turns}### Human: {question}\n### Assistant:"

    def request(
        self,
        modalities: Sequence[str],
        question: str | None = None,
        history: Sequence[tuple[str, str]] = (),
        prompting: Prompting | str = Prompting.TEMPLATE,
    ) -> str:
        """The prompt that asks `question` about inputs of `modalities` after `history`, the one
        place that decides between the two forms: with `prompting` BARE, a first turn that asks
        nothing is the placeholders alone (as the caption stages train); anything else is the
        template, with the modalities' caption request for a turn that asks nothing."""
        if Prompting(prompting) is Prompting.BARE and not question and not history:
            return self.placeholders(modalities)
        from .registry import caption_prompt  # the registry loads the plugins: only when asked

        ask = caption_prompt(list(modalities)) if modalities else ""
        return self.prompt(question or ask, [(q or ask, a) for q, a in history], modalities=modalities)

    def model_inputs(
        self, prompts: Sequence[str], inputs: Sequence[Sequence[tuple[str, torch.Tensor]]] | ModalityBatch
    ) -> dict[str, Any]:
        """generate()'s keyword arguments for a batch of prompts: the left-padded text side and
        `inputs`, each prompt's (modality, input) pairs in placeholder order, as a ModalityBatch
        (or one already built, whose order follows the prompts)."""
        if isinstance(inputs, ModalityBatch):
            return {**self(prompts), "inputs": inputs}
        batch = self(prompts, modalities=[[m for m, _ in pairs] for pairs in inputs])
        return {**batch, "inputs": ModalityBatch.of_samples(inputs)}

    def segments(
        self, turns: Sequence[tuple[str, str]], modalities: Sequence[str] = ("modality",)
    ) -> list[tuple[str, bool]]:
        """A whole conversation as (text, is_answer) pieces in order: each turn's prompt text
        (its history included by the turns before it) then its answer, so that every answer
        is trained in one sequence with the history it follows."""
        if not turns:
            raise ValueError("a conversation needs at least one (question, answer) turn")
        if any(self.markers(question) for question, _ in turns):
            modalities = ()  # the turns place the inputs themselves, from the first turn on
        pieces, done = [], ""
        for n, (question, answer) in enumerate(turns):
            text = self.prompt(question, turns[:n], modalities)
            if not text.startswith(done):
                # A chat template that rewrites earlier turns (e.g. drops past reasoning) cannot
                # train several answers in one sequence.
                raise ValueError(
                    f"the {self.prompt_template!r} prompt of turn {n + 1} does not extend the "
                    "turns before it; train such conversations one turn at a time"
                )
            pieces += [(text[len(done) :], False), (answer, True)]
            done = text + answer + (self.tokenizer.eos_token or "")
        return pieces

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def _marker_pattern(self) -> re.Pattern:
        names = sorted({"modality", *self.preprocessing}, key=len, reverse=True)
        return re.compile("<(" + "|".join(map(re.escape, names)) + ")>")

    def markers(self, text: str) -> list[str]:
        """The modality each placeholder of `text` names, in order ("modality": any)."""
        return self._marker_pattern().findall(text)

    def encode(self, text: str) -> tuple[list[int], list[bool]]:
        """Token ids and, per position, whether an input's token run goes there."""
        bos = self.tokenizer.bos_token_id
        ids = [bos] if bos is not None and self.prompt_template == "onellm" else []
        more, mask = self._encode_piece(text)
        return ids + more, [False] * len(ids) + mask

    def _encode_piece(self, text: str) -> tuple[list[int], list[bool]]:
        pieces = self._marker_pattern().split(text)  # text, marker name, text, marker name, ..., text
        ids = self._ids(pieces[0])
        mask = [False] * len(ids)
        for n in range(1, len(pieces), 2):
            ids += [self.tokenizer.pad_token_id] * self.num_modality_tokens
            mask += [True] * self.num_modality_tokens
            ids += self._ids(pieces[n + 1])
            mask += [False] * (len(ids) - len(mask))
        return ids, mask

    def encode_conversation(self, pieces: Sequence[tuple[str, bool]]) -> tuple[list[int], list[bool], list[int]]:
        """`segments` (or any (text, is_answer) pieces) -> ids, modality mask and labels:
        every answer and the end-of-text token after it labelled, everything else -100."""
        ids, mask = self.encode("")
        labels = [-100] * len(ids)
        for text, is_answer in pieces:
            if is_answer:
                more = self._ids(text) + [self.tokenizer.eos_token_id]
                ids, mask, labels = ids + more, mask + [False] * len(more), labels + more
            else:
                more, more_mask = self._encode_piece(text)
                ids, mask, labels = ids + more, mask + more_mask, labels + [-100] * len(more)
        return ids, mask, labels

    def check_inputs(self, prompts: Sequence[str], modalities: Sequence[Sequence[str]]) -> None:
        """Each prompt's placeholders against the modalities of its sample's inputs, in order."""
        if len(prompts) != len(modalities):
            raise ValueError(f"{len(prompts)} prompts but inputs for {len(modalities)} samples")
        for n, (text, given) in enumerate(zip(prompts, modalities)):
            named = self.markers(text)
            if len(named) != len(given) or any(m not in ("modality", g) for m, g in zip(named, given)):
                shown = ", ".join(f"<{m}>" for m in named) or "no placeholder"
                raise ValueError(
                    f"prompt {n} has {shown} but its sample's inputs are {', '.join(given) or 'none'}: {text[:80]!r}"
                )

    def __call__(
        self,
        prompts: Sequence[str] | None = None,
        answers: Sequence[str] | None = None,
        padding_side: str | None = None,
        modalities: Sequence[Sequence[str]] | None = None,
        conversations: Sequence[Sequence[tuple[str, bool]]] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Batch of prompts (and answers, for training) -> input_ids, attention_mask,
        modality_mask and, with answers, labels (-100 everywhere but the answer and EOS).
        Or, for training whole conversations, `conversations`: each sample's `segments`,
        every answer labelled. `modalities`: each sample's input modalities, checked against
        its placeholders.

        Generation pads on the left, training on the right, unless told otherwise."""
        if (prompts is None) == (conversations is None):
            raise ValueError("give either prompts (with or without answers) or conversations")
        if conversations is None:
            if answers is not None and len(answers) != len(prompts):
                raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
            conversations = [
                [(text, False)] + ([(answers[i], True)] if answers is not None else [])
                for i, text in enumerate(prompts)
            ]
        if modalities is not None:
            self.check_inputs(["".join(t for t, answer in c if not answer) for c in conversations], modalities)
        labelled = any(answer for c in conversations for _, answer in c)
        side = padding_side or ("right" if labelled else "left")
        rows = [self.encode_conversation(pieces) for pieces in conversations]
        length = max(len(r[0]) for r in rows)
        pad = self.tokenizer.pad_token_id
        out = {
            k: torch.full((len(rows), length), v, dtype=torch.long)
            for k, v in (("input_ids", pad), ("attention_mask", 0), ("labels", -100))
        }
        out["modality_mask"] = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, (ids, mask, labels) in enumerate(rows):
            span = slice(length - len(ids), length) if side == "left" else slice(0, len(ids))
            out["input_ids"][i, span] = torch.tensor(ids)
            out["attention_mask"][i, span] = 1
            out["modality_mask"][i, span] = torch.tensor(mask)
            out["labels"][i, span] = torch.tensor(labels)
        if not labelled:
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
        """processor_config.json in `directory`, the text tokenizer in `directory`/llm (beside
        the LM, in a model's directory)."""
        directory = Path(directory)
        self.tokenizer.save_pretrained(directory / TEXT_TOKENIZER_DIR)
        (directory / PROCESSOR_CONFIG).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> OneLLMProcessor:
        """The processor a save_pretrained directory (a model's or a processor's) holds."""
        directory = Path(directory).expanduser()
        config_path = directory / PROCESSOR_CONFIG
        if not config_path.is_file():
            raise FileNotFoundError(f"{directory}: no {PROCESSOR_CONFIG}; not a saved OneLLM model or processor")
        config = json.loads(config_path.read_text())
        if config.get("processor_class", cls.__name__) != cls.__name__:
            raise ValueError(f"{config_path}: a {config['processor_class']}, not a {cls.__name__}")
        tokenizer = AutoTokenizer.from_pretrained(directory / TEXT_TOKENIZER_DIR)
        return cls(
            tokenizer,
            config["num_modality_tokens"],
            config.get("prompt_template", "onellm"),
            config.get("preprocessing", {}),
        )
