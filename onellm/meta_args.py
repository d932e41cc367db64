"""`--meta KEY=VALUE` on the command line: what a manifest's meta would tell a loader."""

from __future__ import annotations

import argparse

import yaml

META_HELP = "what a manifest's meta would say about the file, e.g. sample_rate=50 for an IMU .npy; repeat for several"


def meta_item(text: str) -> tuple[str, object]:
    """KEY=VALUE with the value read as YAML, so numbers arrive as numbers."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, yaml.safe_load(value)
