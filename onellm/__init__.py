"""onellm: any-modality multimodal LLMs in the style of OneLLM (CVPR 2024)."""

from .config import EncoderConfig, LLMConfig, OneLLMConfig, UPMConfig, list_presets
from .modality import ModalitySpec, ModalityTokenizer, TokenGrid
from .registry import get_modality, list_modalities, register_modality

__version__ = "0.1.0"


def __getattr__(name: str):
    # The model pulls in torch + transformers; keep `import onellm` light for config work.
    if name in ("OneLLM", "OneLLMProcessor"):
        from .model.onellm import OneLLM
        from .processor import OneLLMProcessor

        return {"OneLLM": OneLLM, "OneLLMProcessor": OneLLMProcessor}[name]
    raise AttributeError(name)


__all__ = [
    "EncoderConfig",
    "LLMConfig",
    "OneLLMConfig",
    "UPMConfig",
    "ModalitySpec",
    "ModalityTokenizer",
    "TokenGrid",
    "OneLLM",
    "OneLLMProcessor",
    "get_modality",
    "list_modalities",
    "list_presets",
    "register_modality",
]
