"""The LLaMA-2 sentencepiece tokenizer as a Hugging Face tokenizer, checked against sentencepiece."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..errors import BadInputError
from ..processor import ONELLM_SYSTEM

# Text the converted tokenizer must split exactly as sentencepiece does: the OneLLM prompt,
# newlines, runs of spaces, digits and bytes outside the vocabulary.
PROBES = (
    f"{ONELLM_SYSTEM}\n\n### Human: What is this?\n### Assistant:",
    " two  leading spaces\tand a tab",
    "A 12.5 cm café, 東京 ✓\n",
)


def load_llama_tokenizer(model_file: str | Path) -> PreTrainedTokenizerBase:
    """A fast tokenizer built from `tokenizer.model`, refused when it splits any probe text
    differently from sentencepiece itself (the published model saw sentencepiece's ids)."""
    import sentencepiece

    path = Path(model_file)
    try:
        sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as err:
        raise BadInputError(path, f"not a sentencepiece model ({err})") from err
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(path, Path(tmp) / "tokenizer.model")
        tokenizer = AutoTokenizer.from_pretrained(tmp)
    for text in PROBES:
        ours = tokenizer(text, add_special_tokens=False)["input_ids"]
        if ours != sp.encode(text):
            raise BadInputError(
                path, f"the Hugging Face conversion splits {text[:40]!r} differently from sentencepiece"
            )
    if (tokenizer.bos_token_id, tokenizer.eos_token_id) != (sp.bos_id(), sp.eos_id()):
        raise BadInputError(
            path,
            f"BOS/EOS ids {tokenizer.bos_token_id}/{tokenizer.eos_token_id} differ from "
            f"sentencepiece's {sp.bos_id()}/{sp.eos_id()}",
        )
    return tokenizer
