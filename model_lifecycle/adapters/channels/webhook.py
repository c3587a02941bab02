"""A Slack-compatible incoming webhook: ``{"text": ...}`` (Mattermost and Teams workflows accept it).

The URL is a secret: it is never printed, not even in an error. A POST is sent at most twice, and
the second time only when the first surely did nothing: the hook answered 429 (rate-limited, with
a short Retry-After). A connection error, a lost answer or a 5xx is not retried: a 5xx or a lost
answer may come after the hook posted, and a repeat would post the message twice.
"""

from __future__ import annotations

import time
from typing import Any

from model_lifecycle.adapters.channels import Channel, Message, fit, register
from model_lifecycle.errors import BadInput, ServiceError

# Slack truncates a message's text after 40,000 characters.
TEXT_LIMIT = 40_000
TIMEOUT = (5, 15)  # seconds to connect, to read the answer
MAX_RETRY_AFTER = 10  # seconds a 429 may ask us to wait before the one retry


@register
class Webhook(Channel):
    name = "webhook"

    def enabled(self, message: Message) -> bool:
        return bool(message.webhook_url)

    def check(self, message: Message) -> None:
        if not (message.webhook_url or "").startswith(("https://", "http://")):
            raise BadInput("the webhook URL must start with https:// (or http://)",
                           hint="check $LIFECYCLE_WEBHOOK_URL or --webhook-url (the value is not shown)")

    def send(self, message: Message) -> dict[str, Any]:
        text, cut = fit(message.markdown, TEXT_LIMIT, message.run_url, measure=len)
        status = post(message.webhook_url or "", {"text": text})
        return {"status": status, "cut": cut}


def post(url: str, payload: dict[str, Any]) -> int:
    """POST the payload; the HTTP status on success, ServiceError otherwise (never naming the URL)."""
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    for scheme in ("https://", "http://"):
        session.mount(scheme, HTTPAdapter(max_retries=0))  # retries are decided below, per answer
    for attempt in (1, 2):
        try:
            response = session.post(url, json=payload, timeout=TIMEOUT, allow_redirects=False)
        except requests.RequestException as exc:
            if _never_sent(exc):
                raise ServiceError(f"the notification webhook could not be reached ({type(exc).__name__}); "
                                   "nothing was posted") from exc
            raise ServiceError(f"the notification webhook did not answer ({type(exc).__name__}); it may have "
                               "posted, so it was not retried") from exc
        wait = _retry_after(response)
        if response.status_code == 429 and attempt == 1 and wait is not None:
            time.sleep(wait)
            continue
        if response.status_code >= 300:
            raise ServiceError(f"the notification webhook answered HTTP {response.status_code}"
                               + ("; not retried, as it may have posted" if response.status_code >= 500 else ""))
        return response.status_code
    raise ServiceError("the notification webhook answered HTTP 429 twice (rate-limited)")


def _never_sent(exc: Exception) -> bool:
    """Whether the request failed before any byte of it left (no connection was made)."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _retry_after(response: Any) -> float | None:
    """Seconds to wait before retrying a 429 (default 1), or None when the hook asks for too long."""
    value = response.headers.get("Retry-After", "1")
    try:
        seconds = max(float(value), 0.0)
    except ValueError:
        return None
    return seconds if seconds <= MAX_RETRY_AFTER else None
