"""Manifest rows: a malformed row is an error naming the file, the line and the field."""

import json

import pytest

from onellm.data.manifest import read_manifest


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"caption": ["two", "captions"]}, r"'caption' must be a string, got list"),
        ({"qa": {"question": "q", "answer": "a"}}, r"'qa' must be a list"),
        ({"qa": [{"question": "q"}]}, r"every 'qa' entry needs a question and an answer"),
        ({"meta": "rate=50"}, r"'meta' must be an object, got str"),
        ({"split": "dev"}, r"split 'dev' is not one of"),
        ({"colour": "red"}, r"unknown field\(s\) \['colour'\]"),
    ],
)
def test_malformed_rows_name_file_line_and_field(tmp_path, bad, message):
    good = {"id": "a", "modality": "image", "files": ["a.png"], "caption": "a cat"}
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "b", **bad}) + "\n")
    with pytest.raises(ValueError, match=rf"m\.jsonl:2: {message}"):
        read_manifest(path)
    path.write_text(json.dumps(good) + "\n")
    assert [s.caption for s in read_manifest(path)] == ["a cat"]
