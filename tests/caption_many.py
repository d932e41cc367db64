"""`onellm caption` (onellm.cli.main) on many files in ONE process, so that a test pays the
torch import once rather than per file.

Each call's stdout and stderr are captured at the file-descriptor level, so that what a
decoder's C library writes there counts too; Python warnings show on every call, as they
would on the first call of a fresh process. A decoder that crashes takes this process down:
the caller sees the exit status, and the progress file names the file being read. The
model is built once, on the first call.

    python caption_many.py CASES.json RESULTS.json PROGRESS.txt

CASES.json: [{"name": ..., "args": [caption arguments]}]; RESULTS.json gets
{"results": {name: {"rc", "stdout", "stderr", "seconds"}}, "peak_rss_mb", "cpu_s"}.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
import warnings
from collections.abc import Callable

import torch

from onellm.cli import main
from onellm.model.onellm import OneLLM


def _captured(args: list[str]) -> dict:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            rc = main(["caption", *args])
        except BaseException as raised:  # main must not raise; SystemExit comes from argparse
            rc = f"raised {type(raised).__name__}: {raised}"
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
        out.seek(0)
        err.seek(0)
        return {"rc": rc, "stdout": out.read().decode(errors="replace"), "stderr": err.read().decode(errors="replace")}


def _build_once(build: Callable[[str], OneLLM]) -> Callable[[str], OneLLM]:
    models: dict[str, OneLLM] = {}
    return lambda name: models[name] if name in models else models.setdefault(name, build(name))


if __name__ == "__main__":
    cases_file, results_file, progress_file = sys.argv[1:]
    # Every call asks for the same model; building it per file would be a third of the run.
    OneLLM.from_pretrained = staticmethod(_build_once(OneLLM.from_pretrained))
    torch.set_num_threads(1)  # the tiny model's threads would only wait for each other
    warnings.simplefilter("always")
    results = {}
    with open(cases_file) as f, open(progress_file, "w") as progress:
        for case in json.load(f):
            progress.write(case["name"] + "\n")
            progress.flush()
            start = time.perf_counter()
            results[case["name"]] = _captured(case["args"])
            results[case["name"]]["seconds"] = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(results_file, "w") as f:
        json.dump(
            {
                "results": results,
                "peak_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
                "cpu_s": usage.ru_utime + usage.ru_stime,
            },
            f,
        )
