"""What `GET /metrics` shows, in Prometheus' text format (readable as it is, and scraped by
the usual tools): requests by status, queue length, batch sizes, tokens and tokens/s."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
# tokens/s over the batches of the last minute: the rate now, not since the start.
RATE_WINDOW_S = 60.0


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.responses: Counter[int] = Counter()
        self.in_server = 0  # admitted, and not yet generated or dropped by the batcher
        self.waiting = 0  # admitted, decoded, and waiting for a batch
        self.batches = 0
        self.batch_sizes: Counter[int] = Counter()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.generate_seconds = 0.0
        self._recent: deque[tuple[float, int]] = deque()  # (end time, tokens) per batch

    def move(self, in_server: int = 0, waiting: int = 0) -> None:
        """Change the gauges by these amounts."""
        with self._lock:
            self.in_server += in_server
            self.waiting += waiting

    def answered(self, status: int) -> None:
        with self._lock:
            self.responses[status] += 1

    def batch(self, size: int, prompt_tokens: int, completion_tokens: int, seconds: float) -> None:
        with self._lock:
            now = time.monotonic()
            self.batches += 1
            self.batch_sizes[size] += 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.generate_seconds += seconds
            self._recent.append((now, completion_tokens))
            while self._recent and self._recent[0][0] < now - RATE_WINDOW_S:
                self._recent.popleft()

    def tokens_per_second(self) -> float:
        with self._lock:
            now = time.monotonic()
            recent = [n for t, n in self._recent if t >= now - RATE_WINDOW_S]
        return sum(recent) / RATE_WINDOW_S

    def render(self) -> str:
        rate = self.tokens_per_second()
        with self._lock:
            lines = ["# TYPE onellm_requests_total counter"]
            lines += [f'onellm_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.responses.items())]
            lines += [
                "# TYPE onellm_requests_in_server gauge",
                f"onellm_requests_in_server {self.in_server}",
                "# TYPE onellm_queue_length gauge",
                f"onellm_queue_length {self.waiting}",
                "# TYPE onellm_batch_size histogram",
            ]
            for bound in BATCH_BUCKETS:
                below = sum(n for size, n in self.batch_sizes.items() if size <= bound)
                lines.append(f'onellm_batch_size_bucket{{le="{bound}"}} {below}')
            total = sum(size * n for size, n in self.batch_sizes.items())
            lines += [
                f'onellm_batch_size_bucket{{le="+Inf"}} {self.batches}',
                f"onellm_batch_size_sum {total}",
                f"onellm_batch_size_count {self.batches}",
                "# TYPE onellm_prompt_tokens_total counter",
                f"onellm_prompt_tokens_total {self.prompt_tokens}",
                "# TYPE onellm_completion_tokens_total counter",
                f"onellm_completion_tokens_total {self.completion_tokens}",
                "# TYPE onellm_generate_seconds_total counter",
                f"onellm_generate_seconds_total {self.generate_seconds:.3f}",
                "# TYPE onellm_tokens_per_second gauge",
                f"onellm_tokens_per_second {rate:.2f}",
            ]
        return "\n".join(lines) + "\n"
