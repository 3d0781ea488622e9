"""`/langsmith` text into a typed command: one pure function, so every spelling is unit-tested."""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Collection
from dataclasses import dataclass

from checks.errors import LsreadyError


@dataclass(frozen=True)
class Triage:
    target: str | None = None
    runbook: str | None = None
    action = "triage"


@dataclass(frozen=True)
class Check:
    selector: str | None = None
    target: str | None = None
    action = "check"


@dataclass(frozen=True)
class Status:
    target: str | None = None
    private: bool = False  # `status me`: answered only to the caller
    action = "status"


@dataclass(frozen=True)
class Ack:
    item_id: str
    note: str = ""
    expires: str | None = None
    target: str | None = None
    link: str | None = None  # only the modal asks for an evidence link
    action = "ack"


@dataclass(frozen=True)
class Digest:
    target: str | None = None
    action = "digest"


@dataclass(frozen=True)
class Preflight:
    target: str | None = None
    to: str | None = None  # the chart version to upgrade to
    action = "preflight"


@dataclass(frozen=True)
class Help:
    problem: str | None = None
    suggestion: str | None = None
    action = "help"


Command = Triage | Check | Status | Ack | Digest | Preflight | Help
# A command whose access rule is another's: the preflight only reads, like a check.
ACCESS = {"preflight": "check"}

# Usage line and one-line description per subcommand, in the order help shows them.
USAGE: dict[str, tuple[str, str]] = {
    "triage": ("triage [target] [runbook]", "run an incident runbook, live, step by step"),
    "check": ("check [section|item-id] [target]", "run the readiness checks and post the report"),
    "status": ("status [target] [me]", "score buckets and failing required items (`me`: only to you)"),
    "ack": ("ack <item-id> [note] [for 30d]", "acknowledge a manual checklist item"),
    "digest": ("digest [target]", "preview the weekly readiness digest"),
    "preflight": ("preflight [target] [chart-version]", "is a helm upgrade safe? live, step by step"),
    "help": ("help", "this list"),
}

MAX_WORD = 100  # no target, section, item id or runbook is longer
PRIVATE = ("me", "private")  # `status me`: the answer goes only to the caller
_EXPIRY = re.compile(r"\s+for\s+(\d+\s*[a-z]*)\s*$", re.I)
_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|[^>]*)?>")


class UsageError(LsreadyError):
    """The text is not a command; `suggestion` is the closest one."""

    def __init__(self, message: str, suggestion: str | None = None) -> None:
        self.suggestion = suggestion
        hint = f" Did you mean `{suggestion}`?" if suggestion else ""
        super().__init__(f"{message}{hint}")


def _closest(word: str, choices: Collection[str]) -> str | None:
    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _name(word: str, names: Collection[str]) -> str | None:
    """The configured name `word` refers to (exact, else case-insensitive)."""
    if word in names:
        return word
    return next((n for n in names if n.lower() == word.lower()), None)


def clean(text: str) -> str:
    """Slack's wire format back to what the user typed: entities decoded, links unwrapped."""
    return html.unescape(_SLACK_LINK.sub(r"\1", text or "")).strip()


def parse(text: str, *, targets: Collection[str] = (), runbooks: Collection[str] = ()) -> Command:
    """The command in `text`; raises UsageError with the closest subcommand, target or runbook."""
    words = clean(text).split()
    if not words:
        return Help()
    head, args = words[0].lower(), words[1:]
    if head != "ack":  # an ack's note may be long; any other word is a name or an id
        for arg in args:
            if len(arg) > MAX_WORD:
                raise UsageError(
                    f"`{arg[:30]}…` ({len(arg)} characters) is too long to be a target, section or id."
                )
    if head not in USAGE:
        raise UsageError(f"`{words[0]}` is not a command.", _closest(head, USAGE))
    if head == "help":
        return Help()
    if head == "ack":
        return _ack(clean(text).split(None, 1)[1] if args else "", targets)
    if head == "preflight":
        return _preflight(args, targets)
    if head == "triage":
        return _triage(args, targets, runbooks)
    if head == "check":
        return _check(args, targets)
    private = head == "status" and any(a.lower() in PRIVATE for a in args)
    if private:
        args = [a for a in args if a.lower() not in PRIVATE]
    if len(args) > 1:
        raise UsageError(f"`{head}` takes at most a target: `{USAGE[head][0]}`.")
    target = (_name(args[0], targets) or args[0]) if args else None
    return Status(target, private) if head == "status" else Digest(target)


def parse_ack(text: str, *, targets: Collection[str] = ()) -> Ack:
    """An `ack <item-id> [note] [for 30d]` reply; anything else is a UsageError."""
    cmd = parse(text, targets=targets)
    if not isinstance(cmd, Ack):
        raise UsageError(f"only `{USAGE['ack'][0]}` works in a thread.")
    return cmd


def interpret(text: str, *, targets: Collection[str] = (), runbooks: Collection[str] = ()) -> Command:
    """Like parse, but a usage problem becomes help that names it."""
    try:
        return parse(text, targets=targets, runbooks=runbooks)
    except UsageError as exc:
        return Help(problem=str(exc), suggestion=exc.suggestion)


def _triage(args: list[str], targets: Collection[str], runbooks: Collection[str]) -> Triage:
    if len(args) > 2:
        raise UsageError(f"`triage` takes a target and a runbook: `{USAGE['triage'][0]}`.")
    target = runbook = None
    for arg in args:
        if runbook is None and _name(arg, runbooks):
            runbook = _name(arg, runbooks)
        elif target is None and (_name(arg, targets) or not targets):
            target = _name(arg, targets) or arg
        else:
            known = f"targets: {', '.join(sorted(targets)) or 'none'}; runbooks: {', '.join(runbooks)}"
            raise UsageError(
                f"'{arg}' is neither a target nor a runbook ({known}).", _closest(arg, [*targets, *runbooks])
            )
    return Triage(target, runbook)


def _check(args: list[str], targets: Collection[str]) -> Check:
    if len(args) > 2:
        raise UsageError(f"`check` takes a section or item and a target: `{USAGE['check'][0]}`.")
    if len(args) == 1 and _name(args[0], targets):
        return Check(None, _name(args[0], targets))
    if len(args) == 2 and _name(args[0], targets) and not _name(args[1], targets):
        args = [args[1], args[0]]  # `check prod redis` reads as well as `check redis prod`
    selector = args[0] if args else None
    target = (_name(args[1], targets) or args[1]) if len(args) == 2 else None
    return Check(selector, target)


_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:[-.][0-9A-Za-z.]+)?$")


def _preflight(args: list[str], targets: Collection[str]) -> Preflight:
    if len(args) > 2:
        raise UsageError(f"`preflight` takes a target and a chart version: `{USAGE['preflight'][0]}`.")
    target = to = None
    for arg in args:
        version = arg.removeprefix("langsmith-").removeprefix("v")
        if to is None and _VERSION.match(version) and not _name(arg, targets):
            to = version
        elif target is None:
            target = _name(arg, targets) or arg
        else:
            raise UsageError(f"'{arg}' is not a chart version like 0.17.2: `{USAGE['preflight'][0]}`.")
    return Preflight(target, to)


def _ack(rest: str, targets: Collection[str]) -> Ack:
    words = rest.split(None, 1)
    if not words:
        raise UsageError(f"`ack` needs an item id: `{USAGE['ack'][0]}`.")
    target = None
    if len(words) == 2 and _name(words[0], targets) and "." not in words[0]:
        target = _name(words[0], targets)
        words = words[1].split(None, 1)
    item_id, note = words[0], words[1] if len(words) > 1 else ""
    expires = None
    match = _EXPIRY.search(" " + note)
    if match:
        expires = match.group(1).replace(" ", "")
        note = (" " + note)[: match.start()].strip()
    return Ack(item_id, note.strip(), expires, target)
