"""Load on `onellm serve` from localhost: 1, 8 and 32 concurrent clients of the official
`openai` client, batched serving (--max-batch 32) against one request at a time (--max-batch 1).

Each level sends a fixed number of requests (and stops issuing new ones after --time-limit
seconds), --repeats times per server, the two servers taking turns so that outside load
falls on both alike; requests cycle over an image, an audio clip, an IMU window (the
`onellm_input` part) and text alone, greedy, --max-tokens each. Reported per level:
requests/s, generated tokens/s (the servers' usage counts), p50/p99 latency, failures by
HTTP status and each server's peak resident memory, then the batched over one-at-a-time
ratio of requests/s, overall and per repeat (its two runs back to back) with their median,
and the machine's load average. By default the model's end-of-text logit is zeroed first
(--no-full-length keeps it), so that every answer runs to --max-tokens as a trained model's
long answers do (the random tiny LM says end-of-text within a few tokens).

    python benchmarks/bench_serve.py --model tiny
    python benchmarks/bench_serve.py --model smollm2 --requests 16 32 64
    python benchmarks/bench_serve.py --model tiny --engine litserve   # the same load on LitServe
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import openai
import psutil
from PIL import Image

NAME = "bench"
LITSERVE_VARIANT = Path(__file__).with_name("litserve_variant.py")


def _payloads() -> list[list[dict]]:
    """The user contents the clients cycle over: an image, audio, an IMU window, text alone."""
    rng = np.random.default_rng(0)
    png = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(png, format="PNG")
    import soundfile

    wav = io.BytesIO()
    soundfile.write(wav, (0.3 * np.sin(np.arange(16000) / 8)).astype(np.float32), 16000, format="WAV")
    imu = io.BytesIO()
    np.save(imu, rng.standard_normal((6, 400)).astype(np.float32))
    b64 = lambda data: base64.b64encode(data.getvalue()).decode()  # noqa: E731
    ask = {"type": "text", "text": "Describe it in detail."}
    return [
        [ask, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(png)}"}}],
        [ask, {"type": "input_audio", "input_audio": {"data": b64(wav), "format": "wav"}}],
        [
            ask,
            {
                "type": "onellm_input",
                "onellm_input": {"modality": "imu", "data": b64(imu), "format": "npy", "meta": {"sample_rate": 200}},
            },
        ],
        [{"type": "text", "text": "Write a long story about a lighthouse."}],
    ]


def _full_length_copy(model: str, out: Path) -> str:
    import torch

    from onellm import OneLLM

    torch.manual_seed(0)
    loaded = OneLLM.from_pretrained(model)
    with torch.no_grad():
        loaded.llm.get_output_embeddings().weight[loaded.processor.tokenizer.eos_token_id] = 0
    loaded.save_pretrained(out)
    return str(out)


class Server:
    def __init__(self, engine: str, model: str, max_batch: int, threads: int, device: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
        env.pop("ONELLM_API_KEY", None)
        if engine == "litserve":
            command = [sys.executable, str(LITSERVE_VARIANT), model, str(self.port), str(max_batch)]
        else:
            command = [
                sys.executable,
                "-m",
                "onellm.cli",
                "serve",
                "--model",
                model,
                "--port",
                str(self.port),
                "--served-model-name",
                NAME,
                "--max-batch",
                str(max_batch),
                "--max-queue",
                "64",
                "--timeout",
                "600",
                "--device",
                device,
            ]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.peak_rss = 0
        self._watch = threading.Thread(target=self._rss, daemon=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the server exited while starting")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        self._watch.start()

    def _rss(self) -> None:
        """The server's resident memory, its worker processes' included (LitServe runs the
        model in one)."""
        proc = psutil.Process(self.process.pid)
        while self.process.poll() is None:
            try:
                family = [proc, *proc.children(recursive=True)]
                self.peak_rss = max(self.peak_rss, sum(p.memory_info().rss for p in family))
            except psutil.Error:
                pass  # a child that just ended: the next look counts the rest
            time.sleep(0.05)

    def close(self) -> None:
        children = psutil.Process(self.process.pid).children(recursive=True)
        self.process.terminate()
        self.process.wait(timeout=60)
        for child in children:  # LitServe's workers, should they outlive it
            if child.is_running():
                child.terminate()
        psutil.wait_procs(children, timeout=30)


async def _level(port: int, clients: int, requests: int, max_tokens: int, time_limit: float) -> dict:
    """`requests` requests from `clients` concurrent clients: latencies, tokens, failures, wall time."""
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=600)
    payloads = _payloads()
    issued = iter(range(requests))
    run = {"latencies": [], "failures": Counter(), "tokens": 0}
    stop_at = time.monotonic() + time_limit

    async def worker() -> None:
        for n in issued:
            if time.monotonic() > stop_at:
                return
            start = time.perf_counter()
            try:
                reply = await client.chat.completions.create(
                    model=NAME,
                    messages=[{"role": "user", "content": payloads[n % len(payloads)]}],
                    max_tokens=max_tokens,
                    temperature=0,
                )
            except openai.APIStatusError as err:
                run["failures"][str(err.status_code)] += 1
                continue
            except openai.APIError as err:
                run["failures"][type(err).__name__] += 1
                continue
            run["latencies"].append(time.perf_counter() - start)
            run["tokens"] += reply.usage.completion_tokens

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    run["wall"] = time.perf_counter() - start
    await client.close()
    return run


def _rps(run: dict) -> float:
    return len(run["latencies"]) / run["wall"]


def _summary(clients: int, runs: list[dict]) -> dict:
    """The repeats of one level together: their requests over their summed wall time."""
    latencies = sorted(x for r in runs for x in r["latencies"])
    wall = sum(r["wall"] for r in runs)
    failures = sum((r["failures"] for r in runs), Counter())
    quantile = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")  # noqa: E731
    return {
        "clients": clients,
        "done": len(latencies),
        "rps": len(latencies) / wall,
        "tps": sum(r["tokens"] for r in runs) / wall,
        "p50": quantile(0.5),
        "p99": quantile(0.99),
        "failures": dict(failures),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="a preset name or a save_pretrained directory")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--requests",
        type=int,
        nargs="+",
        default=[32, 64, 128],
        help="requests per level and repeat, one value per --clients value",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="each level this often per server, the two servers taking turns (ABBA...), so "
        "that outside load falls on both alike",
    )
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--time-limit", type=float, default=300, help="seconds per level before it stops issuing")
    parser.add_argument("--threads", type=int, default=2, help="the server's torch threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--engine",
        choices=["onellm", "litserve"],
        default="onellm",
        help="onellm serve (FastAPI + uvicorn), or the same model on LitServe (needs litserve)",
    )
    parser.add_argument(
        "--no-full-length",
        dest="full_length",
        action="store_false",
        help="keep the model's end-of-text token (answers may end early)",
    )
    args = parser.parse_args()
    if len(args.requests) != len(args.clients):
        parser.error("--requests needs one value per --clients value")
    modes = {"batched": 32, "one at a time": 1}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        model = _full_length_copy(args.model, Path(tmp) / "model") if args.full_length else args.model
        servers = {}
        try:
            # Both up at once (an idle server takes no CPU), so that their levels can alternate.
            for mode, max_batch in modes.items():
                servers[mode] = Server(args.engine, model, max_batch, args.threads, args.device)
                asyncio.run(_level(servers[mode].port, 1, 2, args.max_tokens, args.time_limit))  # warm-up
            runs: dict[str, list[list[dict]]] = {mode: [] for mode in modes}
            for clients, requests in zip(args.clients, args.requests):
                level = {mode: [] for mode in modes}
                for repeat in range(args.repeats):
                    for mode in list(modes) if repeat % 2 == 0 else list(modes)[::-1]:
                        level[mode].append(
                            asyncio.run(_level(servers[mode].port, clients, requests, args.max_tokens, args.time_limit))
                        )
                for mode in modes:
                    runs[mode].append(level[mode])
        finally:
            for server in servers.values():
                server.close()
    print(
        f"{args.engine}: model {args.model}, {args.max_tokens} tokens per answer, {args.threads} torch threads, "
        f"{args.device}, {args.repeats} repeats per level, load average {load_before:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    print("| serving | clients | requests | req/s | tokens/s | p50 s | p99 s | failures | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    results = {mode: [_summary(c, level) for c, level in zip(args.clients, runs[mode])] for mode in modes}
    for mode, rows in results.items():
        for r in rows:
            failed = ", ".join(f"{k}: {v}" for k, v in r["failures"].items()) or "0"
            print(
                f"| {mode} | {r['clients']} | {r['done']} | {r['rps']:.2f} | {r['tps']:.0f} | {r['p50']:.3f} "
                f"| {r['p99']:.3f} | {failed} | {servers[mode].peak_rss / 2**20:.0f} |"
            )
    for n, (batched, single) in enumerate(zip(results["batched"], results["one at a time"])):
        ratio = batched["rps"] / single["rps"] if single["rps"] else float("nan")
        # Each repeat's two runs went back to back, so their ratio saw about the same outside
        # load; the median of those is what a noisy machine measures best.
        paired = [
            _rps(b) / _rps(s) if _rps(s) else float("nan") for b, s in zip(runs["batched"][n], runs["one at a time"][n])
        ]
        print(
            f"{batched['clients']} clients: batched / one at a time = {ratio:.1f}x req/s; per repeat "
            f"{', '.join(f'{r:.1f}x' for r in paired)}, median {statistics.median(paired):.1f}x"
        )


if __name__ == "__main__":
    main()
