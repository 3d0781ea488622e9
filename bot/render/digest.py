"""A digest as text, Markdown or JSON (Slack blocks live with the Slack renderers)."""

from __future__ import annotations

import json

from bot.render.templating import render
from runbooks.digest import Digest


def render_digest(digest: Digest, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(digest.to_dict(), indent=2, default=str) + "\n"
    # Markdown readers render the plain text well enough; headings add little to a short digest.
    text = render("digest.txt.j2", d=digest)
    if fmt == "markdown":
        lines = text.splitlines()
        return "\n".join([f"## {lines[0]}", *lines[1:]]) + "\n"
    return text
