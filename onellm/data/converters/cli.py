"""`onellm data convert FORMAT INPUT --out MANIFEST --media-root DIR ...`: one sub-command
per format (public datasets', and `tsv` / `folder` for your own files), each with the common
options plus its converter's own."""

from __future__ import annotations

import argparse
import inspect
import sys

from . import CONVERTERS, convert, get_converter

COMMON = ("source", "media", "split", "modality")  # samples()'s leading parameters


def _run(args: argparse.Namespace) -> int:
    converter = get_converter(args.format)
    options = {
        name: getattr(args, name) for name in list(inspect.signature(converter.samples).parameters)[len(COMMON) :]
    }
    report = convert(
        args.format,
        args.input,
        args.out,
        args.media_root,
        check_files=args.check_files,
        split=args.split,
        modality=args.modality,
        **options,
    )
    print(f"{args.out}: {report.summary()}", file=sys.stderr)
    for path in report.missing[:5]:
        print(f"  missing: {path}", file=sys.stderr)
    return 0


def add_convert_parser(data_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `convert` (one sub-command per format) under the `onellm data` command."""
    parser = data_subparsers.add_parser(
        "convert",
        help="write a manifest from your files (a table: tsv; a folder: folder) or a public dataset's annotations",
    )
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    for name in CONVERTERS:
        converter = get_converter(name)
        media_is_input = getattr(converter, "MEDIA_IS_INPUT", False)
        sub = formats.add_parser(
            name,
            help=converter.HELP,
            description=getattr(converter, "DESCRIPTION", converter.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("input", help="the folder of files" if media_is_input else "the annotation file")
        sub.add_argument("--out", required=True, help="the manifest to write (.jsonl)")
        sub.add_argument(
            "--media-root",
            required=not media_is_input,
            help="folder the media names are relative to (paths in the manifest point there)"
            + ("; default: the input folder" if media_is_input else ""),
        )
        sub.add_argument(
            "--split",
            choices=("train", "val", "test"),
            help="split of every row; for files that name each row's split, keep only this one",
        )
        default = getattr(converter, "MODALITY_HELP", f"default: {converter.MODALITY}")
        sub.add_argument("--modality", help=f"modality of the samples ({default})")
        sub.add_argument("--check-files", action="store_true", help="drop (and count) rows whose media file is missing")
        converter.add_arguments(sub)
        sub.set_defaults(func=_run)
    return parser
