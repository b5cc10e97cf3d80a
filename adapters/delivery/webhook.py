"""Handoffs as a signed JSON webhook, for a ticket system or an automation.

Each POST carries:

    Content-Type: application/json
    Idempotency-Key: <the outbox row's key; the same on every retry of the same delivery>
    X-Coach-Timestamp: <unix seconds, for this attempt>
    X-Coach-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>" with the shared secret>

A receiver recomputes the HMAC over the raw bytes it received (see `verify_signature`),
rejects a timestamp more than five minutes old, and drops a key it has already processed.
2xx means delivered; 409 is read as "already have it"; 408, 425, 429 and 5xx are retried with
backoff (Retry-After is honoured); any other 4xx stops retries until an operator looks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import Any

from bot.handoff.delivery import DeliveryError, OutboxItem
from bot.settings import WebhookSettings

RETRYABLE = frozenset({408, 425, 429})
USER_AGENT = "IntegrationCoach-Webhook/1"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Coach-Signature value for one request."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance: float = 300.0,
                     now: float | None = None) -> bool:
    """For Python receivers: True when the signature matches and the timestamp is fresh."""
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except (TypeError, ValueError):
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def payload(item: OutboxItem) -> dict[str, Any]:
    """The JSON body: stable across retries (only the timestamp header and signature change)."""
    context = item.payload.get("context") or {}
    return {"id": item.key, "type": f"handoff.{item.event}", "ticket": item.ticket, "escalation_id": item.escalation_id,
            "target": context.get("target"), "urgency": context.get("urgency"), "status": context.get("status"),
            "context": context}


class WebhookChannel:
    """POSTs every escalation event for the configured targets to one URL."""

    name = "webhook"
    events = frozenset({"opened", "updated", "claimed", "resolved"})

    def __init__(self, settings: WebhookSettings) -> None:
        if not settings.url:
            raise ValueError("WebhookChannel(): settings.url is not set (COACH_WEBHOOK__URL).")
        if settings.secret is None or not settings.secret.get_secret_value():
            raise ValueError("WebhookChannel(): a signing secret is required (COACH_WEBHOOK__SECRET).")
        self.url = settings.url
        self._secret = settings.secret.get_secret_value()
        self.timeout = settings.timeout_seconds
        self.targets = frozenset(settings.targets)

    def request(self, item: OutboxItem, *, timestamp: str | None = None) -> urllib.request.Request:
        """The signed request for one outbox row (no network)."""
        body = json.dumps(payload(item), ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        ts = timestamp or str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Idempotency-Key": item.key,
                   "X-Coach-Timestamp": ts, "X-Coach-Signature": sign(self._secret, ts, body),
                   "X-Coach-Event": item.event, "X-Coach-Ticket": item.ticket}
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.request(item), timeout=self.timeout) as resp:
                return {"status": resp.status}
        except urllib.error.HTTPError as exc:
            status = exc.code
            if status == 409:  # the receiver already has this key: that is delivered
                return {"status": status, "duplicate": True}
            retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            permanent = 400 <= status < 500 and status not in RETRYABLE
            raise DeliveryError(f"webhook answered HTTP {status}", permanent=permanent, retry_after=retry_after) from None
        except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout: try again later
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"webhook unreachable: {type(reason).__name__}: {reason}") from None

    def probe(self) -> str:
        """HEAD the URL: any HTTP answer (even 405) means it is reachable; nothing is delivered."""
        request = urllib.request.Request(self.url, method="HEAD", headers={"User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryError(f"unreachable: {getattr(exc, 'reason', exc)}") from None
        return f"webhook reachable (HEAD answered HTTP {status})"


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None  # an HTTP date: the backoff decides
