"""Metrics as pure functions of {id: prediction} and {id: references}, returning {name: float}.

Captions go through pycocoevalcap (the COCO caption evaluation) after its PTB tokenizer;
METEOR, the tokenizer and SPICE are Java programs, so a Java runtime must be on PATH.
SPICE also needs the Stanford CoreNLP jars, which pycocoevalcap would download on first
use: we never download, we only run it when they are already there."""

from __future__ import annotations

import importlib.util
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from .answers import choice_index, contains_words, normalize_answer

CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


def spice_available() -> bool:
    """True when Java and SPICE's CoreNLP jars are present (nothing is downloaded)."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations or shutil.which("java") is None:
        return False
    lib = Path(list(spec.submodule_search_locations)[0]) / "spice" / "lib"
    return all((lib / jar).is_file() for jar in CORENLP_JARS)


def skipped_metrics(spice: bool) -> dict[str, str]:
    """Caption metrics left out of a run, and why (shown beside the scores)."""
    if spice:
        return {}
    return {"SPICE": f"needs Java and {' + '.join(CORENLP_JARS)} in pycocoevalcap/spice/lib (never downloaded)"}


def _check_ids(predictions: dict[str, str], references: dict[str, list[str]]) -> list[str]:
    missing = sorted(set(predictions) - set(references))
    if missing:
        raise ValueError(f"{len(missing)} prediction(s) have no references, e.g. {missing[:3]}")
    empty = [k for k in predictions if not references[k]]
    if empty:
        raise ValueError(f"{len(empty)} sample(s) have an empty reference list, e.g. {empty[:3]}")
    return sorted(predictions)


class CaptionScorer:
    """COCO caption metrics. Keeps its METEOR process between calls (starting the Java
    program dominates the cost on small tasks); use as a context manager or call close()."""

    def __init__(self, spice: bool | None = None) -> None:
        self.spice = spice_available() if spice is None else spice
        self._meteor = None

    def __enter__(self) -> CaptionScorer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._meteor is not None:
            # pycocoevalcap's __del__ stops the Java process; running it twice is harmless.
            self._meteor.__del__()
            self._meteor = None

    def warm_up(self) -> None:
        """Start the METEOR process now; it loads its tables while the caller does other work."""
        from pycocoevalcap.meteor.meteor import Meteor

        if self._meteor is None:
            self._meteor = Meteor()

    def tokenize(self, texts: dict[str, list[str]]) -> dict[str, list[str]]:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tokenized = PTBTokenizer().tokenize({k: [{"caption": t} for t in v] for k, v in texts.items()})
        # The tokenizer drops trailing empty lines, so an empty caption can go missing.
        return {k: tokenized.get(k, [""] * len(v)) for k, v in texts.items()}

    def __call__(self, predictions: dict[str, str], references: dict[str, list[str]]) -> dict[str, float]:
        """BLEU-1..4, METEOR, ROUGE-L, CIDEr (and SPICE when available), corpus level."""
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge

        ids = _check_ids(predictions, references)
        if not ids:
            return {}
        res = self.tokenize({k: [predictions[k]] for k in ids})
        gts = self.tokenize({k: list(references[k]) for k in ids})
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        scores = {f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu)}
        self.warm_up()
        scores["METEOR"] = float(self._meteor.compute_score(gts, res)[0])
        scores["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
        scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
        if self.spice:
            from pycocoevalcap.spice.spice import Spice

            scores["SPICE"] = float(Spice().compute_score(gts, res)[0])
        return scores


def qa_accuracy(predictions: dict[str, str], references: dict[str, list[str]]) -> dict[str, float]:
    """`accuracy` after VQA normalisation: with one or two reference answers (MSVD-QA and most
    video QA) a prediction is right when it equals one of them; with VQA's ten human answers,
    the VQA score min(#humans who gave it / 3, 1) averaged over the leave-one-out subsets.
    `contains_accuracy` is the looser rule of OneLLM's MSVD-QA script (prediction inside the
    answer or the answer inside the prediction, as substrings), for comparison with its
    published numbers. `word_accuracy` counts a prediction right when a reference answer
    appears in it as whole words ("yes, it is" for "yes", but not "nothing" for "no"): the
    robust rule for short label answers and chatty models."""
    ids = _check_ids(predictions, references)
    if not ids:
        return {}
    exact = contains = words = 0.0
    for k in ids:
        said = normalize_answer(predictions[k])
        given = [normalize_answer(r) for r in references[k]]
        if len(given) < 3:
            exact += float(said in given)
        else:
            matches = [sum(g == said for g in given[:i] + given[i + 1 :]) for i in range(len(given))]
            exact += sum(min(m / 3, 1.0) for m in matches) / len(given)
        contains += float(bool(said) and any(said in g or g in said for g in given if g))
        words += float(any(contains_words(said, g) for g in given))
    return {"accuracy": exact / len(ids), "contains_accuracy": contains / len(ids), "word_accuracy": words / len(ids)}


def majority_accuracy(references: dict[str, list[str]]) -> float:
    """The `accuracy` of answering every question with the commonest answer: the baseline a
    QA score must beat before it says the model looked at the input."""
    if not references:
        return float("nan")
    answers = Counter(normalize_answer(r[0]) for r in references.values() if r)
    constant = answers.most_common(1)[0][0] if answers else ""
    return qa_accuracy({k: constant for k in references}, references)["accuracy"]


def multiple_choice_accuracy(
    predictions: dict[str, str], choices: dict[str, list[str]], answers: dict[str, int | str]
) -> dict[str, float]:
    """A prediction is right when it picks the answer's option, by letter or by text.
    `answers` holds the right option's index, letter or text."""
    ids = sorted(predictions)
    if not ids:
        return {}
    right = 0
    for k in ids:
        right += choice_index(predictions[k], choices[k]) == _option_index(answers[k], choices[k])
    return {"mc_accuracy": right / len(ids)}


def _option_index(answer: int | str, options: list[str]) -> int:
    if isinstance(answer, int):
        return answer
    if answer in options:
        return options.index(answer)
    if len(answer.strip()) == 1 and answer.strip().isalpha():
        return ord(answer.strip().upper()) - ord("A")
    raise ValueError(f"answer {answer!r} is neither an option nor an option letter of {options}")
