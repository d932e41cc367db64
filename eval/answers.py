"""Short-answer normalisation as the official VQA evaluation does it, so that "Two", "2" and
"two." count as the same answer, and reading a multiple-choice pick out of free text."""

from __future__ import annotations

import re

# The VQA evaluation maps number words up to ten to digits and drops these articles.
NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
ARTICLES = {"a", "an", "the"}

# Apostrophe-less spellings the VQA evaluation restores (answers were typed by crowd workers).
_CONTRACTIONS = [
    "ain't",
    "aren't",
    "can't",
    "could've",
    "couldn't",
    "couldn't've",
    "didn't",
    "doesn't",
    "don't",
    "hadn't",
    "hadn't've",
    "hasn't",
    "haven't",
    "he'd",
    "he'd've",
    "he's",
    "how'd",
    "how'll",
    "how's",
    "i'd",
    "i'd've",
    "i'm",
    "i've",
    "isn't",
    "it'd",
    "it'd've",
    "it'll",
    "let's",
    "ma'am",
    "mightn't",
    "mightn't've",
    "might've",
    "mustn't",
    "must've",
    "needn't",
    "not've",
    "o'clock",
    "oughtn't",
    "'ow's'at",
    "shan't",
    "she'd",
    "she'd've",
    "she's",
    "should've",
    "shouldn't",
    "shouldn't've",
    "somebody'd",
    "somebody'd've",
    "somebody'll",
    "somebody's",
    "someone'd",
    "someone'd've",
    "someone'll",
    "someone's",
    "something'd",
    "something'd've",
    "something'll",
    "that's",
    "there'd",
    "there'd've",
    "there're",
    "there's",
    "they'd",
    "they'd've",
    "they'll",
    "they're",
    "they've",
    "'twas",
    "wasn't",
    "we'd",
    "we'd've",
    "we'll",
    "we're",
    "we've",
    "weren't",
    "what'll",
    "what're",
    "what's",
    "what've",
    "when's",
    "where'd",
    "where's",
    "where've",
    "who'd",
    "who'd've",
    "who'll",
    "who's",
    "who've",
    "why'll",
    "why're",
    "why's",
    "won't",
    "would've",
    "wouldn't",
    "wouldn't've",
    "y'all",
    "y'all'll",
    "y'all'd've",
    "you'd",
    "you'd've",
    "you'll",
    "you're",
    "you've",
]
CONTRACTIONS = {c.replace("'", ""): c for c in _CONTRACTIONS}
# The VQA evaluation also accepts the spellings that keep one of two apostrophes.
for _c in (c for c in _CONTRACTIONS if c.count("'") == 2):
    _first = _c.index("'")
    CONTRACTIONS[_c.replace("'", "", 1)] = _c
    CONTRACTIONS[_c[: _first + 1] + _c[_first + 1 :].replace("'", "")] = _c

PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")  # a full stop, but not a decimal point
_DIGIT_COMMA = re.compile(r"(\d)(,)(\d)")


def _strip_punctuation(text: str) -> str:
    out = text
    for p in PUNCTUATION:
        # Punctuation next to a space (or any text with a 1,000-style number) is deleted;
        # punctuation inside a word ("black/white") becomes a space.
        if f"{p} " in text or f" {p}" in text or _DIGIT_COMMA.search(text):
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD.sub("", out)


def normalize_answer(answer: str) -> str:
    """Lower-case, strip punctuation and articles, number words to digits, restore contractions."""
    text = " ".join(answer.replace("\n", " ").replace("\t", " ").split()).lower()
    words = []
    for word in _strip_punctuation(text).split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            words.append(CONTRACTIONS.get(word, word))
    return " ".join(words)


def contains_words(text: str, phrase: str) -> bool:
    """Whether a normalised phrase occurs in a normalised text as whole words ("no" is not
    in "nothing"); both are space-separated words after `normalize_answer`."""
    return bool(phrase) and f" {phrase} " in f" {text} "


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LONE_LETTER = re.compile(r"^\(?([a-z])\)?[.:)]?$", re.I)  # "b", "(B)", "B."
_LEADING_LETTER = re.compile(r"^\(?([A-Z])(?:\)|[.:])?\s")  # "B. a cat", "(B) cat"
_SAID_LETTER = re.compile(r"\b(?:answer|option)(?: is)?:?\s*\(?([A-Z])\b\)?", re.I)  # "The answer is B"


def choice_index(prediction: str, choices: list[str]) -> int | None:
    """Which option a free-text prediction picks: an option letter, else the option whose
    normalised text equals (or, failing that, is the only one contained in) the prediction.
    A leading lower-case "a" is read as the article, not option A, unless it stands alone."""
    text = prediction.strip()
    for pattern in (_LONE_LETTER, _LEADING_LETTER, _SAID_LETTER):
        match = pattern.search(text)
        if match and LETTERS.index(match.group(1).upper()) < len(choices):
            return LETTERS.index(match.group(1).upper())
    said = normalize_answer(text)
    options = [normalize_answer(c) for c in choices]
    if said in options:
        return options.index(said)
    contained = [i for i, o in enumerate(options) if o and re.search(rf"\b{re.escape(o)}\b", said)]
    return contained[0] if len(contained) == 1 else None
