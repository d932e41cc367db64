"""Label accuracy for classification-like caption sets, where every reference is one of a few
captions ("a photo of a {label}"): n-gram metrics mostly reward the shared template there,
so this asks whether the prediction names the right label.

A class is a distinct normalised reference caption; its label words are its words that not
every class shares ("dog" of "a photo of a dog"), or all its words when it has none of its
own. A prediction is right when it contains all its reference's label words and no other
class's label words that are not also its own: naming two labels is wrong, while "black cat"
may contain the label "cat". The baselines beside it: chance (1 / classes) and the majority
class's share of the evaluated samples (always answering the most frequent caption)."""

from __future__ import annotations

from collections import Counter

from .answers import normalize_answer

# More distinct captions than this is a captioning set, not a labelled one.
MAX_CLASSES = 50


def label_words(classes: list[str]) -> dict[str, frozenset[str]]:
    """Each class (a normalised reference caption) -> its label words."""
    words = {c: frozenset(c.split()) for c in classes}
    shared = frozenset.intersection(*words.values()) if words else frozenset()
    return {c: (w - shared) or w for c, w in words.items()}


def names_label(prediction: str, own: frozenset[str], labels: dict[str, frozenset[str]]) -> bool:
    """Whether a prediction names the label `own` and no other label of `labels`."""
    said = set(normalize_answer(prediction).split())
    return own <= said and not any(w <= said and not w <= own for w in labels.values())


def _one_class(references: list[str]) -> str | None:
    """A sample's class: its references normalised, when they all agree."""
    found = {normalize_answer(r) for r in references}
    return found.pop() if len(found) == 1 else None


def label_metrics(
    predictions: dict[str, str], references: dict[str, list[str]], split: list[list[str]] | None = None
) -> dict[str, float]:
    """label_accuracy, label_chance and label_majority over the predicted samples, when the
    split (every sample's references; default: those of the predicted samples) is
    classification-like: each sample one class, 2 to MAX_CLASSES classes. Else {}."""
    classes = {_one_class(refs) for refs in (split if split is not None else references.values())}
    if not predictions or None in classes or not 2 <= len(classes) <= MAX_CLASSES:
        return {}
    labels = label_words(sorted(classes))
    truth = {k: _one_class(references[k]) for k in predictions}
    if not set(truth.values()) <= classes:
        return {}  # a predicted sample outside the split: no class to score it against
    right = sum(names_label(predictions[k], labels[c], labels) for k, c in truth.items())
    return {
        "label_accuracy": right / len(truth),
        "label_chance": 1 / len(classes),
        "label_majority": max(Counter(truth.values()).values()) / len(truth),
    }
