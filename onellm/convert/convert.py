"""`convert_official`: the published checkpoint -> a `OneLLM.from_pretrained` directory.

Tensors stream from the memory-mapped checkpoint through their transform straight into
pre-sized safetensors files, so memory holds one converted tensor at a time (plus whatever
pages of the input the OS keeps cached).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import BadInputError
from .infer import infer_layout
from .official import PREFIX, Layout, Rule, build_rules, is_ignored, to_ours, to_theirs
from .reader import CheckpointReader
from .text_tokenizer import load_llama_tokenizer
from .writer import StreamingSafetensors

LLM_PREFIX = "llm."


@dataclass
class ConversionReport:
    out: Path
    modalities: dict[str, str]  # official name -> ours
    tensors: int = 0
    bytes: int = 0
    unmapped: list[str] = field(default_factory=list)  # official keys nothing reads
    ignored: list[str] = field(default_factory=list)  # CLIP text tower and projection
    missing: list[str] = field(default_factory=list)  # official keys the model needs but the file lacks
    from_clip: list[str] = field(default_factory=list)  # official keys taken from --clip
    filled: list[str] = field(default_factory=list)  # our keys freshly initialised (partial models)

    def summary(self) -> str:
        lines = [
            f"wrote {self.out} ({self.tensors} tensors, {self.bytes / 2**30:.2f} GiB)",
            "modalities: " + ", ".join(f"{t}->{o}" if t != o else o for t, o in self.modalities.items()),
            f"ignored (unused by OneLLM): {len(self.ignored)} keys",
        ]
        for label, keys in (
            ("unmapped", self.unmapped),
            ("missing", self.missing),
            ("from --clip", self.from_clip),
            ("freshly initialised", self.filled),
        ):
            if keys:
                lines.append(f"{label}: {len(keys)} keys, e.g. {', '.join(keys[:5])}")
        return "\n".join(lines)


def convert_official(
    checkpoint: str | Path,
    out: str | Path,
    llama_tokenizer: str | Path,
    *,
    clip: str | Path | None = None,
    dtype: torch.dtype | None = None,
    allow_partial: bool = False,
    llm_heads: int | None = None,
    clip_heads: int | None = None,
    upm_heads: int | None = None,
    progress: bool = True,
) -> ConversionReport:
    """Convert; `dtype` None keeps each tensor's stored dtype. Encoder tensors the checkpoint
    lacks come from `clip` (a local Hugging Face CLIP directory) when given. Refuses
    (BadInputError) when tensors are still missing or unmapped unless `allow_partial`, in
    which case the missing ones are freshly initialised."""
    from ..model.onellm import CONFIG_NAME, LLM_SUBDIR, OneLLM
    from ..processor import OneLLMProcessor

    reader = CheckpointReader(checkpoint)
    source = str(reader.path)
    from_clip = reader.supplement(clip_as_official(clip)) if clip is not None else []
    from_clip = [k[len(PREFIX) :] for k in from_clip]
    shapes = {k[len(PREFIX) :]: reader.shape(k) for k in reader.keys() if k.startswith(PREFIX)}
    layout, config = infer_layout(shapes, source, llm_heads, clip_heads, upm_heads)
    text_tokenizer = load_llama_tokenizer(llama_tokenizer)
    vocab = config.llm.random_init["vocab_size"]
    if len(text_tokenizer) != vocab:
        raise BadInputError(llama_tokenizer, f"has {len(text_tokenizer)} pieces, the checkpoint {vocab} embeddings")

    with torch.device("meta"):
        skeleton = OneLLM(config)
    expected = {k: (tuple(v.shape), v.dtype) for k, v in skeleton.state_dict().items()}
    report = ConversionReport(Path(out), dict(layout.modalities), from_clip=from_clip)
    all_rules = build_rules(layout)
    rules, planned = _plan(all_rules, reader, shapes, dtype, report)
    for key, (shape, _) in planned.items():
        if key not in expected or expected[key][0] != shape:
            want = expected[key][0] if key in expected else "no such tensor"
            raise BadInputError(
                source,
                f"{key} converts to shape {list(shape)}, the model expects {want}; "
                "wrong head counts or an unknown layout?",
            )
    known = {k for rule in all_rules for k in rule.official}
    report.unmapped = [k for k in shapes if k not in known and not is_ignored(k)]
    report.unmapped += [k for k in reader.keys() if not k.startswith(PREFIX)]
    report.ignored = [k for k in shapes if is_ignored(k)]
    fills = {k: (s, dtype or d) for k, (s, d) in expected.items() if k not in planned}
    if (report.missing or report.unmapped or fills) and not allow_partial:
        raise BadInputError(
            source,
            f"would give a partial model: {len(report.missing)} tensors missing "
            f"(e.g. {report.missing[:3]}), {len(report.unmapped)} unmapped "
            f"(e.g. {report.unmapped[:3]}); pass allow_partial to convert anyway",
        )
    _write(Path(out), rules, reader, {**planned, **fills}, _fresh(report), report, progress)

    llm_dir = Path(out) / LLM_SUBDIR
    _llm_config(config, text_tokenizer, dtype or _dominant(planned)).save_pretrained(llm_dir)
    text_tokenizer.save_pretrained(llm_dir)
    shutil.copyfile(llama_tokenizer, llm_dir / "tokenizer.model")
    OneLLMProcessor(
        text_tokenizer, config.upm.num_queries + 2, config.prompt_template, skeleton.processor.preprocessing
    ).save_pretrained(out)
    saved = config.to_dict()
    saved["llm"] = {"name_or_path": LLM_SUBDIR, "hidden_size": config.llm.hidden_size}
    (Path(out) / CONFIG_NAME).write_text(json.dumps(saved, indent=2))
    return report


def _plan(
    rules: list[Rule], reader: CheckpointReader, shapes: dict, dtype: torch.dtype | None, report: ConversionReport
) -> tuple[list[Rule], dict[str, tuple[tuple[int, ...], torch.dtype]]]:
    """The rules whose tensors are all present, and our keys -> (shape, dtype) they give,
    found by running each transform on meta tensors."""
    usable, planned = [], {}
    for rule in rules:
        absent = [k for k in rule.official if k not in shapes]
        if absent:
            report.missing += absent
            continue
        metas = [torch.empty(shapes[k], dtype=reader.dtype(PREFIX + k), device="meta") for k in rule.official]
        for key, tensor in zip(rule.ours, to_ours(rule, metas)):
            planned[key] = (tuple(tensor.shape), dtype or tensor.dtype)
        usable.append(rule)
    return usable, planned


def clip_as_official(clip: str | Path) -> dict[str, torch.Tensor]:
    """A local Hugging Face CLIP's vision tower in the official `llma.clip.visual.*` layout,
    to stand in for encoder tensors a checkpoint lacks (OneLLM keeps OpenAI's CLIP frozen)."""
    from transformers import CLIPVisionModel

    vision = CLIPVisionModel.from_pretrained(clip)
    if vision.config.hidden_act != "quick_gelu":
        raise BadInputError(clip, f"CLIP uses {vision.config.hidden_act}; OneLLM's OpenAI CLIP uses quick_gelu")
    state = {f"encoder.vit.{k}": v for k, v in vision.state_dict().items()}
    layout = Layout(llm_layers=0, llm_heads=1, clip_layers=vision.config.num_hidden_layers, num_experts=0, upm_layers=0)
    out = {}
    for rule in build_rules(layout):
        if all(k in state for k in rule.ours):
            out.update({PREFIX + k: t for k, t in zip(rule.official, to_theirs(rule, [state[k] for k in rule.ours]))})
    return out


def _fresh(report: ConversionReport):
    """Values for what a partial checkpoint lacks: norm weights one, biases zero, the rest N(0, 0.02)."""
    generator = torch.Generator().manual_seed(0)

    def fill(key: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        report.filled.append(key)
        last = key.rsplit(".", 1)[-1]
        if last == "bias":
            return torch.zeros(shape, dtype=dtype)
        if "norm" in last or (len(shape) == 1 and last == "weight"):
            return torch.ones(shape, dtype=dtype)
        return (torch.randn(shape, generator=generator) * 0.02).to(dtype)

    return fill


def _write(out, rules, reader, entries, fill, report, progress) -> None:
    from tqdm.auto import tqdm

    from ..model.onellm import LLM_SUBDIR, WEIGHTS_NAME

    (out / LLM_SUBDIR).mkdir(parents=True, exist_ok=True)
    ours = {k: v for k, v in entries.items() if not k.startswith(LLM_PREFIX)}
    llm = {k[len(LLM_PREFIX) :]: v for k, v in entries.items() if k.startswith(LLM_PREFIX)}
    files = {
        "": StreamingSafetensors(out / WEIGHTS_NAME, ours),
        LLM_PREFIX: StreamingSafetensors(out / LLM_SUBDIR / "model.safetensors", llm),
    }

    def put(key: str, tensor: torch.Tensor) -> None:
        prefix = LLM_PREFIX if key.startswith(LLM_PREFIX) else ""
        files[prefix].write(key[len(prefix) :], tensor)
        report.tensors += 1
        report.bytes += tensor.numel() * tensor.element_size()

    try:
        for rule in tqdm(rules, desc="converting", unit="group", disable=not progress):
            tensors = to_ours(rule, [reader.get(PREFIX + k) for k in rule.official])
            for key, tensor in zip(rule.ours, tensors):
                put(key, tensor.to(entries[key][1]))
        written = {k for rule in rules for k in rule.ours}
        for key, (shape, kind) in entries.items():
            if key not in written:
                put(key, fill(key, shape, kind))
        for f in files.values():
            f.close()
    except BaseException:
        for f in files.values():
            f.abort()
        raise


def _dominant(planned: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> torch.dtype:
    """The LLM's dtype when tensors keep their stored ones: that of its largest tensor."""
    llm = [(torch.Size(s).numel(), d) for k, (s, d) in planned.items() if k.startswith(LLM_PREFIX)]
    return max(llm, key=lambda x: x[0])[1]


def _llm_config(config, text_tokenizer, dtype: torch.dtype):
    from transformers import LlamaConfig

    init = {k: v for k, v in config.llm.random_init.items() if k != "model_type"}
    return LlamaConfig(
        **init,
        bos_token_id=text_tokenizer.bos_token_id,
        eos_token_id=text_tokenizer.eos_token_id,
        architectures=["LlamaForCausalLM"],
        dtype=dtype,
    )
