"""The text of one answer as its tokens arrive: decoded, cut at the first stop string, and
stripped as `OneLLMProcessor.decode` strips, so that a streamed answer joins to exactly the
text the same tokens give unstreamed."""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

# A byte-level tokenizer decodes half a UTF-8 character to this; the next token completes it.
_PARTIAL_CHARACTER = "\ufffd"


class AnswerText:
    def __init__(self, tokenizer: PreTrainedTokenizerBase, stops: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.stops = tuple(stops)
        self.ids: list[int] = []
        self.stopped = False  # a stop string has ended the answer
        self._raw = ""
        self._sent = ""

    def add(self, token: int) -> bool:
        """One more token; True once a stop string has appeared."""
        self.ids.append(token)
        raw = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cut = min((i for i in (raw.find(s) for s in self.stops) if i >= 0), default=-1)
        self.stopped = cut >= 0
        self._raw = raw[:cut] if self.stopped else raw
        return self.stopped

    def text(self) -> str:
        """The answer as it stands if it ended now."""
        return self._raw.strip()

    def delta(self, final: bool = False) -> str:
        """What to send now: the new part of the text that later tokens cannot change. Held
        back until then: leading and trailing white space (stripped at the end, kept when
        text follows), a trailing start of a stop string and half a character."""
        if final or self.stopped:
            shown = self.text()
        else:
            shown = self._raw.lstrip()
            held = next(
                (
                    n
                    for n in range(max(map(len, self.stops), default=1) - 1, 0, -1)
                    if any(s.startswith(shown[-n:]) for s in self.stops) and len(shown) >= n
                ),
                0,
            )
            shown = shown[: len(shown) - held].rstrip().rstrip(_PARTIAL_CHARACTER)
        if not shown.startswith(self._sent):  # a decoder that rewrote earlier text: nothing more to send
            return ""
        new, self._sent = shown[len(self._sent) :], shown
        return new
