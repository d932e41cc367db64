"""Caption metrics agree with pycocoevalcap's own scorers; VQA answer normalisation and
multiple-choice matching behave as the VQA evaluation does."""

import shutil

import pytest

from onellm.eval.answers import choice_index, normalize_answer
from onellm.eval.metrics import CaptionScorer, multiple_choice_accuracy, qa_accuracy, spice_available

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap's tokenizer and METEOR need Java")

CANDIDATES = {
    "a": "A man is riding a red bicycle down the street.",
    "b": "two dogs play with a ball on the grass",
    "c": "a plate of food",
    "d": "",
}
REFERENCES = {
    "a": [
        "A man rides a bicycle along a city street.",
        "a person on a red bike in the road",
        "Man riding his bike down the street.",
    ],
    "b": ["Two dogs are playing with a ball in a field.", "dogs chasing a ball on green grass"],
    "c": ["A plate with a sandwich and some fries.", "a white plate full of food on a table"],
    "d": ["a cat sleeping on a sofa"],
}


@pytest.fixture(scope="module")
def scorer():
    with CaptionScorer(spice=False) as s:
        yield s


@pytest.mark.slow
@needs_java
def test_caption_metrics_equal_pycocoevalcap_scorers(scorer):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": r} for r in v] for k, v in REFERENCES.items()})
    res = tok.tokenize({k: [{"caption": v}] for k, v in CANDIDATES.items()})
    res.setdefault("d", [""])  # the tokenizer drops a trailing empty caption
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    meteor = Meteor()
    expected = {
        **{f"BLEU-{n + 1}": b for n, b in enumerate(bleu)},
        "METEOR": meteor.compute_score(gts, res)[0],
        "ROUGE-L": Rouge().compute_score(gts, res)[0],
        "CIDEr": Cider().compute_score(gts, res)[0],
    }
    meteor.__del__()
    got = scorer(CANDIDATES, REFERENCES)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name
    assert 0 < got["BLEU-1"] < 1 and got["CIDEr"] > 0


@needs_java
def test_identical_captions_score_perfect_bleu_and_beat_wrong_ones(scorer):
    refs = {k: [v[0]] for k, v in REFERENCES.items() if k != "d"}
    right = scorer({k: v[0] for k, v in refs.items()}, refs)
    wrong = scorer({"a": REFERENCES["c"][0], "b": REFERENCES["a"][0], "c": REFERENCES["b"][0]}, refs)
    assert right["BLEU-4"] == pytest.approx(1.0)
    assert right["ROUGE-L"] == pytest.approx(1.0)
    assert right["CIDEr"] > wrong["CIDEr"]
    assert right["METEOR"] > wrong["METEOR"]


@needs_java
def test_spice_only_when_its_jars_are_present(scorer):
    scores = CaptionScorer(spice=None)
    assert scores.spice == spice_available()
    assert "SPICE" not in scorer({"a": "a man on a bike"}, {"a": ["a man rides a bike"]})


def test_caption_metrics_refuse_predictions_without_references(scorer):
    with pytest.raises(ValueError, match="no references"):
        scorer({"x": "a cat"}, {"y": ["a cat"]})


@pytest.mark.parametrize(
    "said, expected",
    [
        ("Two", "2"),
        ("the dog.", "dog"),
        ("yes!", "yes"),
        ("A Red Car", "red car"),
        ("dont", "don't"),
        ("isnt", "isn't"),
        ("couldnt've", "couldn't've"),
        ("black/white", "black white"),
        ("3.5", "3.5"),
        ("1,000", "1000"),
        ("  ten\n", "10"),
        ("None", "0"),
    ],
)
def test_vqa_normalisation(said, expected):
    assert normalize_answer(said) == expected


def test_qa_accuracy_single_answer_after_normalisation():
    preds = {"1": "Two", "2": "the dog.", "3": "Yes!", "4": "cat", "5": ""}
    refs = {"1": ["2"], "2": ["dog"], "3": ["yes"], "4": ["a black cat"], "5": ["red"]}
    got = qa_accuracy(preds, refs)
    assert got["accuracy"] == pytest.approx(3 / 5)
    # OneLLM's MSVD rule also accepts "cat" inside "black cat"; an empty answer never counts.
    assert got["contains_accuracy"] == pytest.approx(4 / 5)


def test_word_accuracy_finds_a_short_answer_as_whole_words():
    preds = {"1": "Yes, it is.", "2": "nothing", "3": "No", "4": "a black cat", "5": "catalogue"}
    refs = {"1": ["yes"], "2": ["no"], "3": ["no"], "4": ["cat"], "5": ["cat"]}
    got = qa_accuracy(preds, refs)
    assert got["accuracy"] == pytest.approx(1 / 5)
    assert got["contains_accuracy"] == pytest.approx(1.0)  # substrings: "no" in "nothing", "cat" in "catalogue"
    assert got["word_accuracy"] == pytest.approx(3 / 5)


def test_qa_accuracy_vqa_score_with_ten_human_answers():
    humans = ["2"] * 2 + ["3"] * 8
    # Leaving out one of the 8 "3"s keeps both "2"s (8 subsets, 2/3 each); leaving out a "2"
    # keeps one (2 subsets, 1/3 each).
    expected = (8 * (2 / 3) + 2 * (1 / 3)) / 10
    assert qa_accuracy({"q": "two"}, {"q": humans})["accuracy"] == pytest.approx(expected)
    assert qa_accuracy({"q": "3"}, {"q": humans})["accuracy"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "said, index",
    [
        ("B", 1),
        ("(c)", 2),
        ("A.", 0),
        ("C. a red car", 2),
        ("The answer is B.", 1),
        ("dog", 1),
        ("a cat", 0),
        ("I think it is the red car", 2),
        ("a horse", None),
    ],
)
def test_choice_index_reads_letters_and_option_text(said, index):
    assert choice_index(said, ["cat", "dog", "red car"]) == index


def test_multiple_choice_accuracy_accepts_index_letter_or_text_answers():
    choices = {k: ["cat", "dog", "red car"] for k in "wxyz"}
    preds = {"w": "B", "x": "red car", "y": "A", "z": "the dog"}
    answers = {"w": 1, "x": "C", "y": "dog", "z": "dog"}
    assert multiple_choice_accuracy(preds, choices, answers)["mc_accuracy"] == pytest.approx(3 / 4)


def test_majority_baseline_is_the_commonest_answer_given_to_every_question():
    from onellm.eval.metrics import majority_accuracy

    refs = {"a": ["Yes"], "b": ["yes."], "c": ["no"], "d": ["two"]}
    assert majority_accuracy(refs) == pytest.approx(2 / 4)  # "yes" after normalisation, right twice
    humans = ["2"] * 6 + ["3"] * 4  # VQA's ten answers: the constant is scored by the same rule
    assert majority_accuracy({"q": humans}) == pytest.approx(1.0)
    assert majority_accuracy({}) != majority_accuracy({})  # nan: no questions, no baseline
