"""Messages -> the model's prompt and its loaded inputs, the way `OneLLM.answer` and the demo
ask: the processor's template with the earlier turns as history, every input's placeholder
leading the first turn (in the order the parts came, over all turns), a caption request
where a turn asks nothing, and, for a model last trained to caption bare, the placeholders
alone when a single turn carries inputs and no text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import describe
from ..inputs import load_input
from .errors import bad_request
from .parts import MediaPolicy, Upload, read_part

if TYPE_CHECKING:
    import torch

    from ..model.onellm import OneLLM
    from ..processor import OneLLMProcessor


@dataclass
class Conversation:
    """The last user turn's `question` ("" when it asks nothing), the earlier (question,
    answer) turns, and every input of every turn in order."""

    question: str
    history: list[tuple[str, str]] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)

    @property
    def modalities(self) -> list[str]:
        return [u.modality for u in self.uploads]


def read_messages(messages: list[Any], modalities: list[str], policy: MediaPolicy, max_inputs: int) -> Conversation:
    history: list[tuple[str, str]] = []
    uploads: list[Upload] = []
    asked: list[str] | None = None  # the texts of the user turn being read
    for n, message in enumerate(messages):
        param = f"messages[{n}]"
        if not isinstance(message, dict):
            raise bad_request(f"{param}: a message is an object with 'role' and 'content'", param=param)
        role = message.get("role")
        if role == "user":
            asked = (asked or []) + _user_content(message.get("content"), param, modalities, policy, uploads)
            if len(uploads) > max_inputs:
                raise bad_request(
                    f"{param}: more than {max_inputs} inputs in one request", param=param, code="too_many_inputs"
                )
        elif role == "assistant":
            if asked is None:
                raise bad_request(f"{param}: an assistant message must answer a user message", param=param)
            history.append((_joined(asked), _text_only(message.get("content"), param)))
            asked = None
        elif role in ("system", "developer"):
            raise bad_request(
                f"{param}: {role} messages are not supported; the model's prompt template sets its own",
                param=f"{param}.role",
                code="unsupported_role",
            )
        else:
            raise bad_request(f"{param}: unknown role {role!r}; use user or assistant", param=f"{param}.role")
    if asked is None:
        raise bad_request("the last message must be the user's", param=f"messages[{len(messages) - 1}]")
    question = _joined(asked)
    if not question and not uploads:
        raise bad_request("the message is empty: no text and no input", param="messages", code="empty_message")
    return Conversation(question, history, uploads)


def build_prompt(conversation: Conversation, processor: OneLLMProcessor, prompting: str) -> str:
    return processor.request(conversation.modalities, conversation.question, conversation.history, prompting)


def load_inputs(uploads: list[Upload], model: OneLLM) -> list[tuple[str, torch.Tensor]]:
    """Each upload through its modality's loader (from memory); a file that does not decode
    is a 400 naming the part and the problem."""
    loaded = []
    for upload in uploads:
        try:
            x = load_input(upload.files, upload.modality, model.tokenizers[upload.modality], meta=upload.meta)
        except Exception as err:  # any loader's, a plugin's too: this request's input is bad, the server goes on
            raise bad_request(describe(err), param=upload.param, code="undecodable_media") from None
        loaded.append((upload.modality, x))
    return loaded


def _user_content(
    content: Any, param: str, modalities: list[str], policy: MediaPolicy, uploads: list[Upload]
) -> list[str]:
    """The texts of a user message; its other parts are appended to `uploads`."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise bad_request(f"{param}: 'content' must be a string or a list of parts", param=f"{param}.content")
    texts = []
    for n, part in enumerate(content):
        where = f"{param}.content[{n}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise bad_request(f"{where}: a part is an object with a 'type'", param=where)
        if part["type"] == "text":
            texts.append(_text(part, where))
        else:
            uploads.append(read_part(part, where, modalities, policy))
    return texts


def _text_only(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return _joined([_text(p, f"{param}.content[{n}]") for n, p in enumerate(content)])
    raise bad_request(f"{param}: an assistant message's content is text", param=f"{param}.content")


def _text(part: dict, where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise bad_request(f"{where}: a text part needs a 'text' string", param=f"{where}.text")
    return text


def _joined(texts: list[str]) -> str:
    return "\n".join(t.strip() for t in texts if t.strip())
