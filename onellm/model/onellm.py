"""OneLLM: modality tokenizer -> shared encoder -> universal projection -> causal LM."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..config import CONFIG_NAME, OneLLMConfig, Prompting, resolve_model
from ..convert.legacy import split_stacked_upm
from ..errors import BadInputError, describe
from ..processor import TEXT_TOKENIZER_DIR, OneLLMProcessor
from ..registry import get_modality
from .encoder import SharedEncoder
from .llm import build_llm, generate_kwargs, load_generation_config, resolve_llm_path
from .lora import LoRAConfig, base_state_dict, inject_lora, load_adapter, save_adapter
from .modality_batch import ModalityBatch
from .upm import UniversalProjection

WEIGHTS_NAME = "onellm.safetensors"
LLM_SUBDIR = TEXT_TOKENIZER_DIR


@dataclass
class OneLLMOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor
    routing: dict[str, torch.Tensor]  # per modality of the batch: router weights [N_m, Q, E]


class OneLLM(nn.Module):
    def __init__(self, config: OneLLMConfig, base_dir: Path | None = None) -> None:
        super().__init__()
        self.config = config
        self.llm, text_tokenizer = build_llm(config.llm, base_dir)
        self.encoder = SharedEncoder(config.encoder)
        self.tokenizers = nn.ModuleDict(
            {
                name: get_modality(name).tokenizer.from_options(config.encoder, options)
                for name, options in config.modalities.items()
            }
        )
        self.upm = UniversalProjection(
            config.upm, config.encoder.width, self.llm.config.hidden_size, list(config.modalities)
        )
        if config.upm.match_llm_embeddings:
            self.upm.match_embeddings(self.llm.get_input_embeddings().weight)
        self.processor = OneLLMProcessor(
            text_tokenizer,
            config.upm.num_queries + 2,
            config.prompt_template,
            {name: dataclasses.asdict(tok.options) for name, tok in self.tokenizers.items()},
        )
        # Every caller's generation defaults (see respond); saved as generation_config.json.
        self.generation_config = load_generation_config(base_dir)
        self.lora: LoRAConfig | None = None
        self._router_sums: dict[str, torch.Tensor] = {}
        self._router_counts: dict[str, int] = {}
        self.set_trainable(encoder=config.train_encoder, llm=config.train_llm)

    # construction -----------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> OneLLM:
        config = OneLLMConfig.from_preset(name)
        for key, value in overrides.items():
            setattr(config, key, value)
        return cls(config)

    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike) -> OneLLM:
        """A save_pretrained directory, or a preset name (randomly initialised parts)."""
        config, directory = resolve_model(name_or_dir, needs=(WEIGHTS_NAME,))
        if directory is None:
            return cls(config)
        weights = directory / WEIGHTS_NAME
        model = cls(config, base_dir=directory)
        try:
            state = split_stacked_upm(load_file(weights))
        except Exception as err:  # safetensors raises its own error types (a pickle, say, is no header)
            raise BadInputError(weights, f"not a readable safetensors file ({describe(err)})") from err
        if config.llm.lora:
            model.lora = LoRAConfig(**config.llm.lora)
            load_adapter(model.llm, model.lora, resolve_llm_path(config.llm.name_or_path, directory))
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("llm.")]
        if missing or unexpected:
            raise ValueError(f"{weights}: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
        return model

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """config.json + onellm.safetensors (encoder, tokenizers, UPM) + llm/ (Hugging Face
        format, with the text tokenizer) + processor_config.json + generation_config.json
        (the generation defaults). config.json and onellm.safetensors are written to a
        temporary name first, so an interrupted save never leaves those half-written."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.lora is None:
            self.llm.save_pretrained(directory / LLM_SUBDIR)
        else:
            self.llm.save_pretrained(directory / LLM_SUBDIR, state_dict=base_state_dict(self.llm, self.lora.merge))
            if not self.lora.merge:
                save_adapter(self.llm, directory / LLM_SUBDIR)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items() if not k.startswith("llm.")}
        _atomic(directory / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
        config = self.config.to_dict()
        config["encoder"]["pretrained"] = None  # its weights are in onellm.safetensors now
        config["llm"] = {"name_or_path": LLM_SUBDIR, "hidden_size": self.llm.config.hidden_size}
        if self.lora is not None and not self.lora.merge:
            config["llm"]["lora"] = self.lora.to_dict()
        _atomic(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2)))
        self.processor.save_pretrained(directory)
        self.generation_config.save_pretrained(directory)

    def add_lora(self, config: LoRAConfig) -> int:
        """LoRA adapters on the LM's `config.target_modules`, the rest of the LM frozen; the
        LM is put in training mode (adapter dropout, checkpointing). Returns the number of
        adapter parameters."""
        count = inject_lora(self.llm, config)
        self.lora = config
        self.llm.train()
        return count

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the LM's and the encoder's block activations in backward instead of
        keeping them (Hugging Face's checkpointing; active in training mode)."""
        for module in (self.llm, self.encoder.vit):
            module.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})

    def set_trainable(self, encoder: bool = False, llm: bool = False) -> None:
        self.encoder.requires_grad_(encoder)
        self.llm.requires_grad_(llm)

    def add_modality(self, name: str, options: dict[str, Any] | None = None, copy_from: str | None = None) -> None:
        """Grow the model by one modality; its UPM parts start as copies of `copy_from`'s,
        by default the model's first modality (image, in the published recipe)."""
        if name in self.tokenizers:
            raise ValueError(f"model already has modality {name!r}")
        if copy_from is not None and copy_from not in self.upm.modalities:
            raise ValueError(f"cannot copy UPM parts from {copy_from!r}: the model has {', '.join(self.modalities)}")
        copy_from = copy_from or next(iter(self.upm.modalities), None)
        tokenizer = get_modality(name).tokenizer.from_options(self.config.encoder, options)
        self.tokenizers[name] = tokenizer.to(self.encoder.image_pos_embed.device)
        self.upm.add_modality(name, copy_from)
        self.config.modalities[name] = dict(options or {})
        self.processor.preprocessing[name] = dataclasses.asdict(tokenizer.options)

    # forward ----------------------------------------------------------------------------
    @property
    def modalities(self) -> list[str]:
        return list(self.tokenizers)

    def encode(self, modality: str, inputs: torch.Tensor, record: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs [B, *input_shape] -> (LLM tokens [B, Q + 2, D] with tags, routing [B, Q, E]);
        `record` adds the routing to router_statistics()."""
        if modality not in self.tokenizers:
            raise KeyError(f"this model has no {modality!r} tokenizer; it has {', '.join(self.modalities)}")
        tokenizer = self.tokenizers[modality]
        grid = tokenizer(inputs, self.encoder)
        b, t, n, w = grid.patches.shape
        if n != tokenizer.num_patches or w != self.encoder.width:
            raise ValueError(
                f"{modality} tokenizer returned patches of shape {list(grid.patches.shape)}; "
                f"expected [B, T, {tokenizer.num_patches}, {self.encoder.width}]"
            )
        # When nothing before the encoder trains, skip building its autograd graph.
        track = any(p.requires_grad for p in tokenizer.parameters()) or any(
            p.requires_grad for p in self.encoder.parameters()
        )
        with torch.set_grad_enabled(torch.is_grad_enabled() and track):
            features = self.encoder(grid.patches.flatten(0, 1), grid.pos_embed)
        features = features.unflatten(0, (b, t)).mean(dim=1)
        tokens, routing = self.upm(modality, features)
        if record:
            self._record_routing(modality, routing)
        return tokens, routing

    def embed(
        self,
        input_ids: torch.Tensor,
        modality_mask: torch.Tensor,
        inputs: ModalityBatch,
        idle: Sequence[str] = (),
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Text embeddings with each placeholder run overwritten by its input's tokens, and
        the router weights per modality. Each modality is encoded once for the whole batch.

        `idle` modalities each encode one zero input whose tokens enter with weight 0: a
        sharded step needs every rank to run the same modules (sharding.step_modalities)."""
        expected = len(inputs) * self.processor.num_modality_tokens
        if int(modality_mask.sum()) != expected:
            raise ValueError(
                f"the text has {int(modality_mask.sum())} modality positions for {len(inputs)} inputs "
                f"of {self.processor.num_modality_tokens} tokens each"
            )
        embeds = self.llm.get_input_embeddings()(input_ids)
        # In the model's modality order, idle ones included: under FSDP the ranks' backward
        # passes then visit the shared encoder and UPM blocks in one order.
        encoded = {}
        for m in (m for m in self.tokenizers if m in inputs.tensors or m in idle):
            if m in inputs.tensors:
                encoded[m] = self.encode(m, inputs.tensors[m])
                continue
            zeros = embeds.new_zeros(1, *self.tokenizers[m].input_shape, dtype=self.encoder.image_pos_embed.dtype)
            tokens, _ = self.encode(m, zeros, record=False)
            embeds = embeds + 0.0 * tokens.sum().to(embeds.dtype)
        if not encoded:
            return embeds, {}
        runs = inputs.gather({m: tokens for m, (tokens, _) in encoded.items()})
        embeds = embeds.masked_scatter(modality_mask.unsqueeze(-1), runs.to(embeds.dtype))
        return embeds, {m: routing for m, (_, routing) in encoded.items()}

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        modality_mask: torch.Tensor,
        modality: str | None = None,
        inputs: torch.Tensor | ModalityBatch | None = None,
        labels: torch.Tensor | None = None,
        loss_only: bool = False,
        idle: Sequence[str] = (),
    ) -> OneLLMOutput:
        """`inputs`: one input of `modality` per sample [B, *input_shape], or a ModalityBatch
        (any inputs per sample, in placeholder order), or None for text only.

        With `labels`, the mean next-token cross-entropy over the labelled positions.
        `loss_only` (the training path) projects only the positions that predict a label onto
        the vocabulary, so `logits` holds just those rows [K, V]; otherwise [B, S, V]. `idle`
        as in embed()."""
        embeds, routing = self.embed(input_ids, modality_mask, as_modality_batch(modality, inputs), idle)
        if labels is None or not loss_only:
            out = self.llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, use_cache=False)
            return OneLLMOutput(out.loss, out.logits, routing)
        hidden = self.llm.base_model(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False)[0]
        targets = labels[:, 1:]
        keep = targets != -100
        logits = self.llm.get_output_embeddings()(hidden[:, :-1][keep])
        loss = F.cross_entropy(logits.float(), targets[keep])
        return OneLLMOutput(loss, logits, routing)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        modality_mask: torch.Tensor,
        modality: str | None = None,
        inputs: torch.Tensor | ModalityBatch | None = None,
        **settings: Any,
    ) -> torch.Tensor:
        """New token ids only; inputs come from the processor with left padding, `inputs` as
        in forward()."""
        embeds, _ = self.embed(input_ids, modality_mask, as_modality_batch(modality, inputs))
        settings.setdefault("pad_token_id", self.processor.tokenizer.pad_token_id)
        return self.llm.generate(inputs_embeds=embeds, attention_mask=attention_mask, **settings)

    def caption(
        self,
        modality: str,
        inputs: torch.Tensor,
        question: str | None = None,
        prompting: Prompting | str | None = None,
        **settings: Any,
    ) -> list[str]:
        """Answer `question` (default: the modality's caption prompt) for each input in the batch.
        `prompting` and `settings` as in answer()."""
        return self.answer({modality: inputs}, question, prompting, **settings)

    def answer(
        self,
        inputs: dict[str, torch.Tensor] | Sequence[tuple[str, torch.Tensor]],
        question: str | None = None,
        prompting: Prompting | str | None = None,
        **settings: Any,
    ) -> list[str]:
        """Answer `question` (default: a caption request naming the inputs' modalities) for each
        sample of the batch. Every sample has the same inputs: `inputs` maps each modality to
        its batch [B, ...] (`{"video": v, "audio": a}`: a video with its sound), or is a list
        of (modality, batch) pairs, which may repeat a modality (two images); they take their
        places in the prompt in this order. `prompting`: how to ask (default: as the model's
        config says it was last trained); see OneLLMProcessor.request. `settings`: generate()'s,
        over the model's generation_config."""
        pairs = list(inputs.items()) if isinstance(inputs, dict) else list(inputs)
        if not pairs:
            raise ValueError("answer() needs at least one input; use the LM's generate() for text alone")
        sizes = {x.shape[0] for _, x in pairs}
        if len(sizes) != 1:
            raise ValueError(f"every input needs one row per sample; got batch sizes {sorted(sizes)}")
        size = sizes.pop()
        modalities = [m for m, _ in pairs]
        prompt = self.processor.request(modalities, question, prompting=prompting or self.config.prompting)
        if len(set(modalities)) == len(modalities):  # each modality's batch as it is, no copy
            given = ModalityBatch(dict(pairs), [(m, i) for i in range(size) for m in modalities])
        else:
            given = [[(m, x[i]) for m, x in pairs] for i in range(size)]
        return self.respond([prompt] * size, given, **settings)

    def respond(
        self,
        prompts: Sequence[str],
        inputs: Sequence[Sequence[tuple[str, torch.Tensor]]] | ModalityBatch,
        **settings: Any,
    ) -> list[str]:
        """The answers to `prompts` (processor.request's), the one path from prompts to text:
        processor -> ModalityBatch -> generate() -> decode. `inputs`: each prompt's (modality,
        input) pairs in placeholder order, or a ModalityBatch in that order. `settings` override
        the model's generation_config (a streamer there sees the tokens too)."""
        device = self.encoder.image_pos_embed.device
        batch = {k: v.to(device) for k, v in self.processor.model_inputs(prompts, inputs).items()}
        settings = {**generate_kwargs(self.generation_config), **settings}
        return self.processor.decode(self.generate(**batch, **settings))

    # router statistics -------------------------------------------------------------------
    def _record_routing(self, modality: str, routing: torch.Tensor) -> None:
        # Summed where the weights are: a copy to the host here would wait for the
        # accelerator on every forward; router_statistics copies once when read.
        summed = routing.detach().float().sum(dim=(0, 1))
        self._router_sums[modality] = self._router_sums.get(modality, 0) + summed
        self._router_counts[modality] = self._router_counts.get(modality, 0) + routing.shape[0] * routing.shape[1]

    def router_statistics(self, reset: bool = False) -> dict[str, dict[str, Any]]:
        """Per modality: mean router weight per expert and the number of routed query tokens
        since the last reset."""
        stats = {
            m: {"mean_weight": (self._router_sums[m] / n).cpu().tolist(), "tokens": n}
            for m, n in self._router_counts.items()
        }
        if reset:
            self._router_sums.clear()
            self._router_counts.clear()
        return stats


def as_modality_batch(modality: str | None, inputs: torch.Tensor | ModalityBatch | None) -> ModalityBatch:
    """forward()'s and generate()'s `inputs` as a ModalityBatch."""
    if inputs is None:
        return ModalityBatch()
    if isinstance(inputs, ModalityBatch):
        return inputs
    if modality is None:
        raise ValueError("a tensor of inputs needs its modality; pass modality=... or a ModalityBatch")
    return ModalityBatch.single(modality, inputs)


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp))
    os.replace(tmp, path)
