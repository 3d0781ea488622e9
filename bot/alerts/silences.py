"""Silences through Alertmanager's v2 API (`POST /api/v2/silences`), for the alert message's buttons."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from urllib.parse import unquote, urlsplit, urlunsplit

from checks.errors import LsreadyError
from checks.secrets import mask_url

TIMEOUT_S = 5.0


class SilenceFailed(LsreadyError):
    pass


def create_silence(
    base_url: str,
    matchers: dict[str, str],
    *,
    starts: datetime,
    hours: int,
    created_by: str,
    comment: str,
    timeout: float = TIMEOUT_S,
) -> str:
    """Silence alerts whose labels equal all of `matchers` for `hours`; returns the silence id.

    Credentials in the URL (https://user:pw@alertmanager...) are sent as basic auth.
    """
    if not matchers:
        raise SilenceFailed("this alert group has no labels to match, so a silence would match every alert.")
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/api/v2/silences", "", ""))
    body = {
        "matchers": [
            {"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in sorted(matchers.items())
        ],
        "startsAt": starts.isoformat(),
        "endsAt": (starts + timedelta(hours=hours)).isoformat(),
        "createdBy": created_by,
        "comment": comment,
    }
    headers = {"Content-Type": "application/json"}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    where = mask_url(base_url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace").strip()
        raise SilenceFailed(f"Alertmanager at {where} refused the silence ({exc.code}: {detail}).") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SilenceFailed(
            f"Alertmanager at {where} did not answer ({reason}); check alerts.alertmanager_url."
        ) from None
    except ValueError:
        raise SilenceFailed(f"Alertmanager at {where} answered with something that is not JSON.") from None
    silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
    if not silence_id:
        raise SilenceFailed(f"Alertmanager at {where} did not return a silence id.")
    return str(silence_id)
