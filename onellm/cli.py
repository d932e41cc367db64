"""The `onellm` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .config import Prompting
from .errors import EXIT_INTERRUPTED, Interrupted, describe
from .meta_args import META_HELP, meta_item

if TYPE_CHECKING:
    import torch

    from .model.onellm import OneLLM

# --with-audio adds the audio stream a file holds (ModalitySpec.streams: a video's soundtrack).
AUDIO = "audio"


class _Input(NamedTuple):
    """One input of a prompt: `file` read as `modality`; `soundtrack`: the sound of a video file."""

    file: str
    modality: str
    soundtrack: bool = False


class _NoSoundtrack(Exception):
    """A video whose sound --with-audio cannot read: told, and the other files go on."""


def _caption(args: argparse.Namespace) -> int:
    import torch

    from .model.onellm import OneLLM

    model = OneLLM.from_pretrained(args.model).eval()
    if args.dtype:
        model.to(getattr(torch, args.dtype))
    model.to(args.device)
    modalities = _check_caption_args(args, model)
    # None: as the model was last trained (its config's "prompting"); an empty question asks nothing.
    prompting = (
        Prompting.BARE if args.bare_prompt or args.question == "" else Prompting.TEMPLATE if args.template else None
    )
    settings = {} if args.max_new_tokens is None else {"max_new_tokens": args.max_new_tokens}
    failed = False
    for sample in _samples(args, modalities, model):
        try:
            inputs = [(item.modality, _load(item, args, model).unsqueeze(0)) for item in sample]
        except _NoSoundtrack as err:
            print(f"onellm caption: error: {err}", file=sys.stderr)
            failed = True
            continue
        text = model.answer(inputs, args.question or None, prompting, **settings)[0]
        files = "+".join(dict.fromkeys(item.file for item in sample))  # a video with its sound: named once
        # one tab-separated line per prompt, whatever the model generates
        print(f"{files}\t{'+'.join(item.modality for item in sample)}\t{' '.join(text.split())}")
    return 2 if failed else 0


def _check_caption_args(args: argparse.Namespace, model: OneLLM) -> list[str]:
    """The --modality values, one per name; ValueError for options that do not fit together."""
    from .registry import get_modality

    modalities = [m.strip() for value in args.modality or [] for m in value.split(",") if m.strip()]
    if args.companion and len(args.files) != 1:
        raise ValueError("--companion belongs to one input file; caption such files one at a time")
    if args.bare_prompt and args.question:
        raise ValueError("--bare-prompt asks nothing: drop --question, or ask it with --template")
    if len(modalities) > 1 and not args.together:
        raise ValueError(
            "several --modality values name each file's modality with --together; "
            "without it, give one modality for all the files"
        )
    if args.together and modalities and len(modalities) != len(args.files):
        raise ValueError(
            f"--together takes one --modality per file, in order ({len(args.files)} files, "
            f"{len(modalities)} given), or none to guess each from its extension"
        )
    for modality in modalities:
        if modality not in model.tokenizers:
            get_modality(modality)  # a modality nobody installed: says which ones are
            raise ValueError(f"the model {args.model} has no {modality} input; it takes {', '.join(model.modalities)}")
    if args.with_audio and AUDIO not in model.tokenizers:
        raise ValueError(
            f"--with-audio needs a model with an audio input; {args.model} takes {', '.join(model.modalities)}"
        )
    return modalities


def _samples(args: argparse.Namespace, modalities: list[str], model: OneLLM) -> Iterator[list[_Input]]:
    """Each prompt's inputs: every file alone, or all of them with --together; a video's
    soundtrack follows it with --with-audio. Files are checked and guessed as they come."""
    from .inputs import guess_modality, require_file
    from .registry import get_modality

    if args.together:
        groups = [list(zip(args.files, modalities or [None] * len(args.files)))]
    else:
        groups = [[(file, modalities[0] if modalities else None)] for file in args.files]
    for group in groups:
        sample = []
        for file, given in group:
            require_file(Path(file))
            modality = given or guess_modality(Path(file), dict(model.tokenizers))
            sample.append(_Input(file, modality))
            if args.with_audio and AUDIO in get_modality(modality).streams:
                sample.append(_Input(file, AUDIO, soundtrack=True))
        yield sample


def _load(item: _Input, args: argparse.Namespace, model: OneLLM) -> torch.Tensor:
    from .errors import BadInputError
    from .inputs import load_input

    companions = [] if item.soundtrack else [Path(p) for p in args.companion or []]
    try:
        return load_input(
            [Path(item.file), *companions], item.modality, model.tokenizers[item.modality], meta=dict(args.meta)
        )
    except BadInputError as err:
        if item.soundtrack:
            raise _NoSoundtrack(f"{describe(err)}; leave out --with-audio to caption its pictures alone") from err
        raise


def _modalities(args: argparse.Namespace) -> int:
    from .config import EncoderConfig, OneLLMConfig
    from .registry import failed_modalities, get_modality, list_modalities, modality_source

    encoder, options = EncoderConfig(), {}
    if args.preset:
        config = OneLLMConfig.from_preset(args.preset)
        encoder, options = config.encoder, config.modalities
    print(f"{'modality':<10} {'tokens':>7}  {'input shape':<22} source")
    for name in list_modalities():
        spec = get_modality(name)
        tok = spec.tokenizer.from_options(encoder, options.get(name))
        shape = "x".join(map(str, tok.input_shape))
        print(f"{name:<10} {tok.num_patches:>7}  {shape:<22} {modality_source(name)}")
    for name, reason in failed_modalities().items():
        print(f"{name:<10} {'-':>7}  {'(failed to load)':<22} {reason}")
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from .quickstart import run

    run(
        args.preset,
        args.seed,
        args.out,
        args.per_modality,
        args.steps_scale,
        args.eval_samples,
        args.batch_size,
        audio_visual=args.audio_visual,
    )
    return 0


def _plot(args: argparse.Namespace) -> int:
    from .training.plot import plot_run

    for path in plot_run(args.run_dir, args.out):
        print(path)
    return 0


LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
DEBUG_ENV = "ONELLM_DEBUG"
DEBUG_HINT = "(--debug for the traceback)"
EPILOG = (
    "Exit status: 0 on success; 2 on an error, told in one line on stderr (onellm --debug COMMAND "
    f"or {DEBUG_ENV}=1 shows the traceback instead); 130 when interrupted; {EXIT_INTERRUPTED} when "
    "fit stopped on SIGTERM or SIGINT, with a checkpoint to resume from (docs/training.md)."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onellm", description="Any-modality multimodal LLMs in the style of OneLLM.", epilog=EPILOG
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the traceback of an error (before the command; or set {DEBUG_ENV}=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in LIGHTNING_COMMANDS:
        sub.add_parser(name, help=f"LightningCLI {name} (onellm {name} --help for its options)", add_help=False)

    cap = sub.add_parser("caption", help="caption (or answer a question about) files of any modality")
    cap.add_argument("files", nargs="+", help="input files, or .npy arrays of the tokenizer's input shape")
    cap.add_argument("--model", default="tiny", help="a save_pretrained directory or a preset name (default: tiny)")
    cap.add_argument(
        "--modality",
        action="append",
        metavar="NAME",
        help="the files' modality (default: guessed from the extension); with --together one "
        "per file, in order, repeated or comma-separated",
    )
    cap.add_argument(
        "--together",
        action="store_true",
        help="all the files are one prompt's inputs (a video and a sound, say), answered in one line",
    )
    cap.add_argument(
        "--with-audio",
        action="store_true",
        help="ask about each file that holds a sound stream (a video) together with its own "
        "soundtrack (the model needs an audio input)",
    )
    cap.add_argument(
        "--companion",
        action="append",
        metavar="FILE",
        help="a file the input needs beside it (the RGB image of a depth or normal map, "
        "the ROI mask of an fMRI volume); repeat for several",
    )
    cap.add_argument("--meta", action="append", type=meta_item, default=[], metavar="KEY=VALUE", help=META_HELP)
    cap.add_argument(
        "--question",
        help="ask this instead of the modality's caption prompt (in the prompt "
        "template; an empty question is --bare-prompt)",
    )
    asking = cap.add_mutually_exclusive_group()
    asking.add_argument(
        "--bare-prompt",
        action="store_true",
        help="generate right after the modality tokens, as the alignment stages train "
        "(the default for a model exported after them)",
    )
    asking.add_argument(
        "--template",
        action="store_true",
        help="ask in the prompt template (the default for instruction-tuned models and presets)",
    )
    cap.add_argument(
        "--max-new-tokens",
        type=int,
        help="at most this many tokens per answer (default: the model's generation_config.json)",
    )
    cap.add_argument("--device", default="cpu")
    cap.add_argument("--dtype", choices=["float32", "bfloat16", "float16"])
    cap.set_defaults(func=_caption)

    mods = sub.add_parser("modalities", help="list installed modalities, their source and token count")
    mods.add_argument("--preset", help="token counts for this preset's options (default: each tokenizer's defaults)")
    mods.set_defaults(func=_modalities)
    plot = sub.add_parser("plot", help="loss curves per modality and a router heat map of a training run")
    plot.add_argument("run_dir")
    plot.add_argument("--out", help="where to write the PNGs (default: the run directory)")
    plot.set_defaults(func=_plot)

    quick = sub.add_parser("quickstart", help="the end-to-end demo on the embedded default")
    quick.add_argument("--preset", default="tiny")
    quick.add_argument("--seed", type=int, default=0)
    quick.add_argument("--out", default="quickstart-run", help="working folder (data, runs, eval)")
    quick.add_argument("--per-modality", type=int, default=400, help="synthetic samples per modality")
    quick.add_argument("--steps-scale", type=float, default=1.0, help="multiply every stage's max_steps")
    quick.add_argument("--eval-samples", type=int, default=40, help="held-out samples per modality and task")
    quick.add_argument("--batch-size", type=int, default=16, help="training batch size of every stage")
    quick.add_argument(
        "--audio-visual",
        action="store_true",
        help="then train stage 5 on videos with their soundtrack and compare both inputs with either alone",
    )
    quick.set_defaults(func=_quickstart)
    for add_parser in _component_parsers():
        add_parser(sub)
    return parser


def _component_parsers() -> list:
    """Subcommands that live with their component; each module imports nothing heavy."""
    from .convert.cli import add_convert_parser
    from .data.cli import add_data_parser
    from .demo.cli import add_demo_parser
    from .eval.cli import add_eval_parser
    from .serving.cli import add_serve_parser

    return [add_data_parser, add_eval_parser, add_convert_parser, add_demo_parser, add_serve_parser]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = argv[:1] == ["--debug"]
    argv = argv[1:] if debug else argv  # also before a Lightning command, whose parser knows no --debug
    debug = debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    command = f"onellm {argv[0]}" if argv and not argv[0].startswith("-") else "onellm"
    try:
        return _dispatch(argv)
    except Interrupted as err:
        if err.rank_zero:  # the other DDP ranks stop with it, silently
            print(f"{command}: {err}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (Exception, KeyboardInterrupt) as err:
        if debug:
            raise
        if isinstance(err, KeyboardInterrupt):
            print(f"{command}: interrupted", file=sys.stderr)
            return 130
        line = f"{command}: error: {describe(err)}"
        if len(line) + len(DEBUG_HINT) < shutil.get_terminal_size().columns:
            line += " " + DEBUG_HINT
        print(line, file=sys.stderr)
        return 2


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in LIGHTNING_COMMANDS:
        from .training.cli import run

        run(argv)
        return 0
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
