"""The same model behind LitServe, for `bench_serve.py --engine litserve` only: the engine
comparison the serving choice rests on (docs/serving.md). Non-streaming; requests are read
with onellm.serving's own functions, and LitServe's dynamic batching (max_batch_size,
batch_timeout) groups them into one OneLLM.generate, as onellm serve does. Needs
`pip install litserve` (not a dependency of onellm).

    python benchmarks/litserve_variant.py MODEL PORT MAX_BATCH
"""

import sys
import time
import uuid
from typing import Any

import litserve as ls
import torch

from onellm import OneLLM
from onellm.model.modality_batch import ModalityBatch
from onellm.serving.conversation import build_prompt, load_inputs, read_messages
from onellm.serving.parts import MediaPolicy
from onellm.serving.request import parse_request


class OneLLMAPI(ls.LitAPI):
    def __init__(self, model_dir: str, max_batch: int) -> None:
        super().__init__(max_batch_size=max_batch, batch_timeout=0.01, api_path="/v1/chat/completions")
        self.model_dir = model_dir

    def setup(self, device: str) -> None:
        torch.manual_seed(0)
        self.model = OneLLM.from_pretrained(self.model_dir).eval()
        self.policy = MediaPolicy(32 * 2**20)

    def decode_request(self, request: dict[str, Any]) -> tuple[str, list, int]:
        chat = parse_request(request, 1024)
        conversation = read_messages(chat.messages, self.model.modalities, self.policy, 8)
        prompt = build_prompt(conversation, self.model.processor, self.model.config.prompting)
        return prompt, load_inputs(conversation.uploads, self.model), chat.max_tokens or 64

    def batch(self, inputs: list) -> list:
        return inputs

    def predict(self, batch: list) -> list[tuple[str, int, int]] | tuple[str, int, int]:
        if self.max_batch_size == 1:  # LitServe then hands over one request, not a list
            return self._generate([batch])[0]
        return self._generate(batch)

    def _generate(self, batch: list) -> list[tuple[str, int, int]]:
        processor = self.model.processor
        prompts = [prompt for prompt, _, _ in batch]
        encoded = processor(prompts)
        ids = self.model.generate(
            **encoded,
            inputs=ModalityBatch.of_samples([x for _, x, _ in batch]),
            max_new_tokens=max(n for _, _, n in batch),
            do_sample=False,
        )
        counts = (ids != processor.tokenizer.pad_token_id).sum(dim=1).tolist()
        prompt_tokens = encoded["attention_mask"].sum(dim=1).tolist()
        return list(zip(processor.decode(ids), prompt_tokens, counts))

    def unbatch(self, output: list) -> list:
        return output

    def encode_response(self, output: tuple[str, int, int]) -> dict[str, Any]:
        text, prompt_tokens, completion_tokens = output
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "bench",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


if __name__ == "__main__":
    model_dir, port, max_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    server = ls.LitServer(OneLLMAPI(model_dir, max_batch), accelerator="cpu", timeout=600)
    server.run(host="127.0.0.1", port=port, log_level="warning", generate_client_file=False)
