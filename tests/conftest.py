import pytest
import torch

from onellm import OneLLM, OneLLMConfig


@pytest.fixture
def tiny_model() -> OneLLM:
    torch.manual_seed(0)
    return OneLLM(OneLLMConfig.from_preset("tiny"))


@pytest.fixture
def captions() -> list[str]:
    return ["a red circle on the left", "a blue square at the top", "a green star", "two yellow triangles"]
