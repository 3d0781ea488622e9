"""Stricter redaction for what leaves the building: support bundles.

On top of the `Redactor` (configured secret values, URL passwords, Slack/LangSmith/AWS tokens), a
`Scrubber` masks values stored under names that look secret (env vars, ConfigMap keys, JSON keys,
`key=value` in text), bearer and basic credentials, PEM private keys (GCP service-account JSON),
JWTs, emails unless kept, and LangSmith run payload fields in log lines. It counts what it masked,
by kind, for the bundle's manifest. A secret needs a name or a shape to be found: a bare random
string under an innocent name is indistinguishable from any other value.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Any

from checks.secrets import MASK, Redactor

# A key whose value is a secret: env var names, ConfigMap keys, JSON keys, `name=value` in text.
_SECRET_WORDS = (
    r"(?:passw|pwd|secret|token|api[_-]?key|apikey|private[_-]?key|access[_-]?key|credential"
    r"|license[_-]?key|signing[_-]?key|encryption[_-]?key|cookie|session[_-]?key|salt|dsn|authorization)"
)
SECRET_NAME = re.compile(r"(?i)" + _SECRET_WORDS)
# Kubernetes fields whose names match SECRET_NAME but which only name a Secret, never hold one.
_NAMES_A_SECRET = frozenset(
    {"secretName", "secretRef", "secretKeyRef", "serviceAccountToken", "automountServiceAccountToken"}
)
# Annotations that carry a whole object again (env values included): dropped, not scrubbed.
DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)")
# After "Bearer" anything is the credential; after "Basic" or "token" only what looks like one (a
# digit and 12+ characters), so "token expired" and "Basic information" stay readable.
_AUTH_HEADER = re.compile(
    r"(?i)\b(bearer)(\s+|%20)([A-Za-z0-9._~+/=\-]{6,})"
    r"|\b(basic|token)(\s+|%20)(?=[A-Za-z0-9._~+/=\-]*\d)([A-Za-z0-9._~+/=\-]{12,})"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_=-]{4,}\.[A-Za-z0-9_=-]{4,}\.[A-Za-z0-9_.+/=-]*")
_NAMED_VALUE = re.compile(
    r"(?i)(?P<name>[\"']?[\w.-]{0,40}?" + _SECRET_WORDS + r"[\w.-]{0,40}[\"']?)"
    r"(?P<sep>\s*(?:=|:|%3D)\s*(?:\\?[\"'])?)(?P<value>[^\s,;&'\"\\]+)"
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_GOOGLE_KEY = re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")
# Run payloads in log lines (JSON fields that carry a user's inputs and outputs), as the chart's script.
_PAYLOAD_FIELDS = (
    "inputs|outputs|input|output|prompt|completion|messages|content|run_inputs|run_outputs|"
    "tool_input|tool_output|chat_history|generations|llm_output|arguments"
)
_PAYLOAD_STRING = re.compile(r'("(?:' + _PAYLOAD_FIELDS + r')"\s*:\s*)"(?:\\.|[^"\\])*"')
_PAYLOAD_OBJECT = re.compile(r'("(?:' + _PAYLOAD_FIELDS + r')"\s*:\s*)(\{[^{}]*\}|\[[^\[\]]*\])')


class Scrubber:
    """Masks secrets in text and JSON-like data; `counts` says how many of each kind (thread-safe)."""

    def __init__(self, redactor: Redactor | None = None, *, keep_emails: bool = False) -> None:
        self.redactor = redactor or Redactor()
        self.keep_emails = keep_emails
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, kind: str, n: int) -> None:
        if n:
            with self._lock:
                self.counts[kind] += n

    def text(self, value: str) -> str:
        """One string, any origin: a log line, a query's text, an exception, a config value."""
        if len(value) < 4:  # shorter than any secret the redactor keeps or any shape below
            return value
        out = value
        if "PRIVATE KEY" in out:
            out, n = _PEM.subn("[private key removed]", out)
            self._count("private_key", n)
        if "eyJ" in out:
            out, n = _JWT.subn(MASK, out)
            self._count("jwt", n)
        out, n = _AUTH_HEADER.subn(lambda m: f"{m[1] or m[4]}{m[2] or m[5]}{MASK}", out)
        self._count("auth_header", n)
        before = out
        out = self.redactor.text(out)
        self._count("credential", int(out != before))
        out, n = _GOOGLE_KEY.subn(MASK, out)
        self._count("api_key", n)
        if "=" in out or ":" in out or "%3D" in out:
            out, n = _NAMED_VALUE.subn(lambda m: f"{m['name']}{m['sep']}{MASK}", out)
            self._count("named_value", n)
        if not self.keep_emails and "@" in out:
            out, n = _EMAIL.subn("[email]", out)
            self._count("email", n)
        return out

    def log_line(self, line: str) -> str:
        """A log line: run payload fields go first, then everything `text` masks."""
        out, n = _PAYLOAD_STRING.subn(lambda m: f'{m[1]}"[payload removed]"', line)
        out, k = _PAYLOAD_OBJECT.subn(lambda m: f'{m[1]}"[payload removed]"', out)
        self._count("payload", n + k)
        return self.text(out)

    def value(self, data: Any, key: str | None = None) -> Any:
        """JSON-like data: secret-named keys and env entries masked whole, every string scrubbed."""
        if isinstance(data, str):
            if key is not None and key not in _NAMES_A_SECRET and SECRET_NAME.search(key):
                self._count("secret_named", 1)
                return MASK
            return self.text(data)
        if isinstance(data, dict):
            return self._mapping(data)
        if isinstance(data, list | tuple):
            return [self.value(v) for v in data]
        return data

    def _mapping(self, data: dict[Any, Any]) -> dict[str, Any]:
        # An env var or a Helm-style {name, value} pair: the name decides.
        name = data.get("name")
        env_like = isinstance(name, str) and "value" in data and bool(SECRET_NAME.search(name))
        out: dict[str, Any] = {}
        for k, v in data.items():
            key = str(k)
            if key == "annotations" and isinstance(v, dict):
                kept = {a: b for a, b in v.items() if a not in DROPPED_ANNOTATIONS}
                self._count("annotation", len(v) - len(kept))
                v = kept
            if key == "binaryData" and isinstance(v, dict):
                self._count("binary_data", len(v))
                out[key] = {
                    self.text(str(a)): f"[{len(str(b))} base64 characters removed]" for a, b in v.items()
                }
                continue
            if env_like and key == "value" and isinstance(v, str):
                self._count("secret_named", 1)
                out[key] = MASK
                continue
            out[self.text(key)] = self.value(v, key)
        return out
