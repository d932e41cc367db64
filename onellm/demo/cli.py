"""`onellm demo`: load a model once and serve the gradio page for it."""

from __future__ import annotations

import argparse

from ..meta_args import META_HELP, meta_item


def add_demo_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    demo = subparsers.add_parser("demo", help="a local web page to caption and chat about files of any modality")
    demo.add_argument("--model", required=True, help="a save_pretrained directory or a preset name")
    demo.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 exposes the page to the network)",
    )
    demo.add_argument("--port", type=int, help="port (default: gradio's, the first free one from 7860)")
    demo.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    demo.add_argument("--max-file-mb", type=float, default=50, help="largest upload accepted, in MiB (default: 50)")
    demo.add_argument("--device", default="cpu", help="torch device, e.g. cuda or cuda:1 (default: cpu)")
    demo.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="cast the model (default: as saved)")
    demo.add_argument(
        "--meta",
        action="append",
        type=meta_item,
        default=[],
        metavar="KEY=VALUE",
        help=f"applied to every upload: {META_HELP}",
    )
    demo.set_defaults(func=run_demo)
    return demo


def run_demo(args: argparse.Namespace) -> int:
    import torch

    from ..model.onellm import OneLLM
    from .app import build_app

    if args.max_file_mb <= 0:
        raise ValueError(f"--max-file-mb must be positive, got {args.max_file_mb}")
    model = OneLLM.from_pretrained(args.model).eval()
    if args.dtype:
        model.to(getattr(torch, args.dtype))
    model.to(args.device)
    app = build_app(model, title=f"onellm demo: {args.model}", meta=dict(args.meta))
    app.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=int(args.max_file_mb * 2**20),
        show_error=True,
    )
    return 0
