"""Slack's payload limits in one place: the renderers fit their output to them, and the tests check it.

`finish` is the last step of every Slack renderer: it redacts every outgoing string and refuses a
payload that Slack would reject, so a too-long summary can never turn into `invalid_blocks` at 3 a.m.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject
from slack_sdk.models.views import View

from checks.secrets import Redactor

Surface = Literal["message", "home", "modal"]

MAX_BLOCKS: dict[str, int] = {"message": 50, "home": 100, "modal": 100}
SECTION_TEXT = 3000
FIELD_TEXT = 2000
CONTEXT_TEXT = 3000
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ACTION_ID = 255
BLOCK_ID = 255
URL = 3000
FIELDS = 10
CONTEXT_ELEMENTS = 10
ACTION_ELEMENTS = 25
OPTIONS = 100
OPTION_TEXT = 75
OPTION_VALUE = 150
PLACEHOLDER = 150
LABEL = 2000
MODAL_TITLE = 24
MODAL_BUTTON = 24
PRIVATE_METADATA = 3000
# Slack truncates a message's `text` at 40,000 characters; as a notification fallback it stays short.
FALLBACK_TEXT = 3000
# Our own caps, kept under Slack's: what a person can type or link and still see in full.
NOTE_INPUT = 2000  # an acknowledgement's note, typed in the modal, echoed in its confirmation
INPUT_ERROR = 1900  # the reason a modal shows against an input it refused
LINK_URL = 2000  # a URL made into a mrkdwn link; a longer one is left out, never cut

# Keys whose values are identifiers, not text a person reads: never redacted, never escaped.
_STRUCTURAL = {
    "type",
    "action_id",
    "block_id",
    "callback_id",
    "value",
    "style",
    "event_type",
    "private_metadata",
}
_ENTITY = re.compile(r"&[a-z]{0,5}$")


class LimitError(ValueError):
    """A payload Slack would reject; `problems` names each offending path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems[:10]))


@dataclass(frozen=True)
class Message:
    """A finished chat message: fallback text, blocks, and optional metadata."""

    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None = None

    def chat_args(self) -> dict[str, Any]:
        """Arguments for chat.postMessage / chat.update."""
        args: dict[str, Any] = {"text": self.text, "blocks": self.blocks}
        if self.metadata is not None:
            args["metadata"] = self.metadata
        return args

    def respond_args(self) -> dict[str, Any]:
        """Arguments for a response_url reply, which carries no metadata."""
        return {"text": self.text, "blocks": self.blocks}


def escape(text: object) -> str:
    """Text shown literally in mrkdwn: `<!channel>` in a note must not ping anyone."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int, ellipsis: str = "…") -> str:
    """At most `limit` characters, cut before any half-written `&amp;`-style entity."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(ellipsis))]
    cut = _ENTITY.sub("", cut)
    return cut + ellipsis


def plain(text: str, limit: int, blank: str = "(unnamed)") -> str:
    """Plain text for a header, button or option: clipped, and never blank (Slack rejects blank text)."""
    return clip(text, limit) if text.strip() else blank


def fit_lines(lines: Sequence[str], limit: int, more: str = "_…and {n} more_") -> str:
    """Join lines within `limit` characters; what does not fit becomes one "and N more" line."""
    reserve = len(more.format(n=len(lines))) + 1
    out: list[str] = []
    used = -1  # no newline before the first line
    for i, raw in enumerate(lines):
        line = clip(raw, max(1, limit - reserve))
        after = len(lines) - i - 1
        tail = len(more.format(n=after)) + 1 if after else 0
        if used + 1 + len(line) + tail <= limit:
            out.append(line)
            used += 1 + len(line)
            continue
        out.append(more.format(n=len(lines) - i))
        break
    return "\n".join(out)


def fit_blocks(
    blocks: Sequence[Block], limit: int, more: Callable[[int], Block] | None = None
) -> list[Block]:
    """At most `limit` blocks; when some are dropped, the last one says how many."""
    if len(blocks) <= limit:
        return list(blocks)
    kept = list(blocks[: limit - 1])
    dropped = len(blocks) - len(kept)
    return [*kept, (more or more_block)(dropped)]


def more_block(n: int, hint: str = "") -> Block:
    return ContextBlock(elements=[MarkdownTextObject(text=f"_…and {n} more.{' ' + hint if hint else ''}_")])


FILE_MAX_BYTES = 1_000_000_000  # files.getUploadURLExternal refuses larger files
BUNDLE_MAX_BYTES = 50_000_000  # a support bundle posted in a thread: well within the file limit


def button_value(**data: Any) -> str | None:
    """A compact JSON button value, or None when it would not fit (the caller leaves the button out)."""
    value = json.dumps({k: v for k, v in data.items() if v is not None}, separators=(",", ":"))
    return value if len(value) <= BUTTON_VALUE else None


def finish(
    text: str,
    blocks: Iterable[Block | dict[str, Any]],
    redactor: Redactor,
    *,
    metadata: dict[str, Any] | None = None,
) -> Message:
    """Redact, fit the fallback text, validate: the one exit of every message renderer."""
    dicts = [b.to_dict() if isinstance(b, Block) else b for b in blocks]
    # The fallback text is what notifications show, parsed as mrkdwn: escaped like any user text.
    payload = redact({"text": clip(escape(text), FALLBACK_TEXT) or " ", "blocks": dicts}, redactor)
    if metadata is not None:
        payload["metadata"] = metadata
    validate(payload, "message")
    return Message(payload["text"], payload["blocks"], metadata)


def finish_view(view: View | dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """Redact and validate a home tab or modal view."""
    data = view.to_dict() if isinstance(view, View) else view
    data = redact(data, redactor)
    validate(data, "home" if data.get("type") == "home" else "modal")
    return data


def redact(value: Any, redactor: Redactor, key: str | None = None) -> Any:
    """Every human-readable string in the payload through the redactor; identifiers untouched."""
    if isinstance(value, str):
        return value if key in _STRUCTURAL else redactor.text(value)
    if isinstance(value, dict):
        return {k: redact(v, redactor, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, redactor, key) for v in value]
    return value


# --- Validation -------------------------------------------------------------------------------


def validate(payload: dict[str, Any], surface: Surface = "message") -> dict[str, Any]:
    """Raise LimitError unless Slack would accept the payload on this surface; returns it unchanged."""
    found = problems(payload, surface)
    if found:
        raise LimitError(found)
    return payload


def problems(payload: dict[str, Any], surface: Surface = "message") -> list[str]:
    """Everything Slack would reject in a message, home tab or modal payload (empty when valid)."""
    out: list[str] = []
    blocks = payload.get("blocks") or []
    if len(blocks) > MAX_BLOCKS[surface]:
        out.append(f"blocks: {len(blocks)} > {MAX_BLOCKS[surface]} on a {surface}")
    if surface == "message":
        text = payload.get("text")
        if not blocks and not (isinstance(text, str) and text.strip()):
            out.append("text: a message needs text or blocks")
        if isinstance(text, str) and len(text) > FALLBACK_TEXT:
            out.append(f"text: {len(text)} > {FALLBACK_TEXT}")
        meta = payload.get("metadata")
        if meta is not None and not (isinstance(meta.get("event_type"), str) and "event_payload" in meta):
            out.append("metadata: needs event_type and event_payload")
    else:
        out.extend(_view_problems(payload, surface))
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        out.extend(_block_problems(block, f"blocks[{i}]", block_ids))
    return out


def _view_problems(view: dict[str, Any], surface: Surface) -> list[str]:
    out = []
    if view.get("type") != surface:
        out.append(f"type: expected {surface}, got {view.get('type')}")
    if surface == "modal":
        title = (view.get("title") or {}).get("text", "")
        if not 1 <= len(title) <= MODAL_TITLE:
            out.append(f"title: {len(title)} characters, must be 1-{MODAL_TITLE}")
        for key in ("submit", "close"):
            if key in view and len(view[key].get("text", "")) > MODAL_BUTTON:
                out.append(f"{key}: > {MODAL_BUTTON} characters")
    if len(view.get("private_metadata") or "") > PRIVATE_METADATA:
        out.append(f"private_metadata: > {PRIVATE_METADATA} characters")
    if len(view.get("callback_id") or "") > 255:
        out.append("callback_id: > 255 characters")
    try:
        View(**{k: v for k, v in view.items() if k not in ("id", "hash")}).to_dict()
    except (SlackObjectFormationError, TypeError, KeyError) as exc:
        out.append(f"view: {exc}")
    return out


def _text_problems(obj: Any, where: str, limit: int, *, plain: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"{where}: not a text object"]
    if plain and obj["type"] != "plain_text":
        return [f"{where}: must be plain_text"]
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        return [f"{where}: empty text"]
    if len(text) > limit:
        return [f"{where}: {len(text)} > {limit} characters"]
    return []


def _block_problems(block: dict[str, Any], where: str, block_ids: set[str]) -> list[str]:
    out: list[str] = []
    kind = block.get("type")
    block_id = block.get("block_id")
    if block_id is not None:
        if len(block_id) > BLOCK_ID:
            out.append(f"{where}.block_id: > {BLOCK_ID} characters")
        if block_id in block_ids:
            out.append(f"{where}.block_id: duplicate '{block_id[:40]}'")
        block_ids.add(block_id)
    if kind == "section":
        if "text" in block:
            out += _text_problems(block["text"], f"{where}.text", SECTION_TEXT)
        fields = block.get("fields") or []
        if not fields and "text" not in block:
            out.append(f"{where}: a section needs text or fields")
        if len(fields) > FIELDS:
            out.append(f"{where}.fields: {len(fields)} > {FIELDS}")
        for j, f in enumerate(fields):
            out += _text_problems(f, f"{where}.fields[{j}]", FIELD_TEXT)
        if "accessory" in block:
            out += _element_problems(block["accessory"], f"{where}.accessory")
    elif kind == "header":
        out += _text_problems(block.get("text"), f"{where}.text", HEADER_TEXT, plain=True)
    elif kind == "context":
        elements = block.get("elements") or []
        if not 1 <= len(elements) <= CONTEXT_ELEMENTS:
            out.append(f"{where}.elements: {len(elements)}, must be 1-{CONTEXT_ELEMENTS}")
        for j, e in enumerate(elements):
            if e.get("type") in ("plain_text", "mrkdwn"):
                out += _text_problems(e, f"{where}.elements[{j}]", CONTEXT_TEXT)
    elif kind == "actions":
        elements = block.get("elements") or []
        if not 1 <= len(elements) <= ACTION_ELEMENTS:
            out.append(f"{where}.elements: {len(elements)}, must be 1-{ACTION_ELEMENTS}")
        action_ids: set[str] = set()
        for j, e in enumerate(elements):
            out += _element_problems(e, f"{where}.elements[{j}]")
            if e.get("action_id") in action_ids:
                out.append(f"{where}.elements[{j}].action_id: duplicate in the block")
            action_ids.add(e.get("action_id"))
    elif kind == "input":
        out += _text_problems(block.get("label"), f"{where}.label", LABEL, plain=True)
        if "hint" in block:
            out += _text_problems(block["hint"], f"{where}.hint", LABEL, plain=True)
        out += _element_problems(block.get("element") or {}, f"{where}.element")
    elif kind != "divider":
        out.append(f"{where}: unexpected block type {kind!r}")
    try:
        parsed = Block.parse(block)
        if parsed is None:
            out.append(f"{where}: slack_sdk does not know block type {kind!r}")
        else:
            parsed.to_dict()
    except (SlackObjectFormationError, TypeError, KeyError, AttributeError) as exc:
        out.append(f"{where}: {exc}")
    return out


def _element_problems(element: dict[str, Any], where: str) -> list[str]:
    out: list[str] = []
    kind = element.get("type")
    if len(element.get("action_id") or "") > ACTION_ID:
        out.append(f"{where}.action_id: > {ACTION_ID} characters")
    if kind == "button":
        out += _text_problems(element.get("text"), f"{where}.text", BUTTON_TEXT, plain=True)
        if len(element.get("value") or "") > BUTTON_VALUE:
            out.append(f"{where}.value: > {BUTTON_VALUE} characters")
        if len(element.get("url") or "") > URL:
            out.append(f"{where}.url: > {URL} characters")
    elif kind == "static_select":
        options = element.get("options") or []
        if not 1 <= len(options) <= OPTIONS:
            out.append(f"{where}.options: {len(options)}, must be 1-{OPTIONS}")
        values = set()
        for j, o in enumerate(options):
            out += _text_problems(o.get("text"), f"{where}.options[{j}].text", OPTION_TEXT, plain=True)
            if not 1 <= len(o.get("value") or "") <= OPTION_VALUE:
                out.append(f"{where}.options[{j}].value: must be 1-{OPTION_VALUE} characters")
            values.add(o.get("value"))
        initial = element.get("initial_option")
        if initial is not None and initial.get("value") not in values:
            out.append(f"{where}.initial_option: not one of the options")
    elif kind in ("plain_text_input", "url_text_input"):
        initial = element.get("initial_value") or ""
        if len(initial) > int(element.get("max_length") or 3000):
            out.append(f"{where}.initial_value: longer than max_length")
    elif kind not in ("overflow",):
        out.append(f"{where}: unexpected element type {kind!r}")
    if "placeholder" in element:
        out += _text_problems(element["placeholder"], f"{where}.placeholder", PLACEHOLDER, plain=True)
    return out
