"""`onellm serve`: load a model once and answer the OpenAI chat-completions API for it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

API_KEY_ENV = "ONELLM_API_KEY"


def add_serve_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    serve = subparsers.add_parser("serve", help="an OpenAI-compatible chat-completions server for every modality")
    serve.add_argument(
        "--model",
        required=True,
        help="a save_pretrained directory (an export, a converted checkpoint) or a preset name",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 exposes it)",
    )
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV) or None,
        help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}; none: no key)",
    )
    serve.add_argument("--served-model-name", help="the model id clients send (default: the --model's name)")
    serve.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    serve.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="cast the model (default: as saved)")
    serve.add_argument("--seed", type=int, default=0, help="seed of a preset's random weights (default: 0)")
    limits = serve.add_argument_group("batching and limits")
    limits.add_argument("--max-batch", type=int, default=32, help="requests per generate (default: 32)")
    limits.add_argument(
        "--batch-window-ms",
        type=float,
        default=10.0,
        help="how long the oldest waiting request waits for others to join it (default: 10)",
    )
    limits.add_argument(
        "--max-queue",
        type=int,
        default=64,
        help="requests in the server at once (decoding, waiting, generating); more get 429 (default: 64)",
    )
    limits.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default: 120)")
    limits.add_argument("--max-body-mb", type=float, default=64.0, help="request body limit in MiB (default: 64)")
    limits.add_argument(
        "--max-file-mb",
        type=float,
        default=32.0,
        help="limit per decoded media file in MiB (default: 32); the loaders' pixel and value caps apply on top",
    )
    limits.add_argument("--max-inputs", type=int, default=8, help="modality inputs per request (default: 8)")
    limits.add_argument(
        "--default-max-tokens",
        type=int,
        help="max_tokens of a request that sets none (default: the model's generation_config.json)",
    )
    media = serve.add_argument_group("where media may come from (default: the request body only)")
    media.add_argument("--allowed-dir", type=Path, help="serve file:// URLs from under this folder")
    media.add_argument("--allow-remote-media", action="store_true", help="fetch http(s) media URLs")
    serve.set_defaults(func=run_serve)
    return serve


def run_serve(args: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from ..model.onellm import OneLLM
    from .app import ServeConfig, build_app

    for name in ("max_batch", "max_queue", "max_inputs", "default_max_tokens"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if args.allowed_dir is not None and not args.allowed_dir.is_dir():
        raise ValueError(f"--allowed-dir {args.allowed_dir} is not a folder")
    torch.manual_seed(args.seed)
    model = OneLLM.from_pretrained(args.model).eval()
    if args.dtype:
        model.to(getattr(torch, args.dtype))
    model.to(args.device)
    config = ServeConfig(
        model_name=args.served_model_name or Path(args.model).name,
        max_batch=args.max_batch,
        batch_window_ms=args.batch_window_ms,
        max_queue=args.max_queue,
        timeout_s=args.timeout,
        max_body_mb=args.max_body_mb,
        max_file_mb=args.max_file_mb,
        max_inputs=args.max_inputs,
        default_max_tokens=args.default_max_tokens,
        allowed_dir=args.allowed_dir,
        allow_remote_media=args.allow_remote_media,
        api_key=args.api_key,
    )
    print(f"onellm serve: {config.model_name} on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(build_app(model, config), host=args.host, port=args.port, log_level="warning")
    return 0
