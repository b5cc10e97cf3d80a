"""Handoffs by e-mail over SMTP (STARTTLS or implicit TLS, optional AUTH), threaded the way helpdesks thread.

The subject carries the ticket (`[Coach H-0042] Projector in room 12 shows no signal`), which
is what most helpdesk systems thread and de-duplicate on. The Message-ID is derived from the
outbox row's idempotency key, so a message sent again after a crash has the same Message-ID
and a receiving system can drop the repeat; updates are replies (In-Reply-To / References).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from typing import Any

from bot.handoff.context import HandoffContext
from bot.handoff.delivery import DeliveryError, OutboxItem
from bot.settings import EmailSettings
from bot.state.database import utcnow

PERMANENT_SMTP = 500  # 5xx replies are permanent (RFC 5321); 4xx are "try again later"


def addresses(value: str | None) -> list[str]:
    """Comma-separated addresses from a setting, display names allowed."""
    return [addr for _, addr in getaddresses([value or ""]) if "@" in addr]


class EmailChannel:
    """Delivers `opened` and `updated` events to the helpdesk's and the integrators' addresses."""

    name = "email"
    events = frozenset({"opened", "updated"})

    def __init__(self, settings: EmailSettings) -> None:
        if not settings.host:
            raise ValueError("EmailChannel(): settings.host is not set (COACH_EMAIL__HOST).")
        self.settings = settings
        self.recipients = {"helpdesk": addresses(settings.helpdesk_to), "integrator": addresses(settings.integrator_to)}
        self.targets = frozenset(t for t, to in self.recipients.items() if to)
        domain = parseaddr(settings.from_addr)[1].rpartition("@")[2]
        self.domain = domain if "." in domain or domain == "localhost" else "integration-coach.local"

    def message_id(self, key: str) -> str:
        """Stable per outbox row: the same row always sends the same Message-ID."""
        return f"<{key}@{self.domain}>"

    def build(self, item: OutboxItem) -> EmailMessage:
        """The message for one outbox row (no network)."""
        context = HandoffContext.from_dict(item.payload["context"])
        to = self.recipients.get(context.target) or self.recipients["integrator"] or self.recipients["helpdesk"]
        if not to:
            raise DeliveryError(f"no e-mail address for {context.target} handoffs (COACH_EMAIL__{context.target.upper()}_TO)",
                                permanent=True)
        msg = EmailMessage()
        subject = context.subject()
        if item.event != "opened":
            subject = "Re: " + subject
        msg["Subject"] = subject
        msg["From"] = self.settings.from_addr
        msg["To"] = ", ".join(to)
        msg["Date"] = format_datetime(utcnow())
        msg["Message-ID"] = self.message_id(item.key)
        if item.event != "opened" and item.first and item.first.get("key"):
            parent = self.message_id(item.first["key"])
            msg["In-Reply-To"] = parent
            msg["References"] = parent
        msg["X-Coach-Ticket"] = context.ticket
        msg["X-Coach-Event"] = item.event
        msg["Auto-Submitted"] = "auto-generated"  # no out-of-office replies into the loop
        if context.urgent:
            msg["X-Priority"] = "1"
            msg["Importance"] = "high"
        msg.set_content(context.as_text())
        return msg

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        msg = self.build(item)
        try:
            with self._connect() as smtp:
                refused = smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(f"every recipient refused ({codes})",
                                permanent=all(c >= PERMANENT_SMTP for c in codes)) from None
        except smtplib.SMTPResponseException as exc:
            detail = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            raise DeliveryError(f"SMTP {exc.smtp_code} {detail[:200]}", permanent=exc.smtp_code >= PERMANENT_SMTP) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"SMTP server does not support what is configured: {exc}", permanent=True) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"SMTP certificate not trusted ({exc.verify_message}); set COACH_EMAIL__CA_FILE",
                                permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout: the server may be back soon
            raise DeliveryError(f"SMTP {self.settings.host}:{self.settings.port} unreachable: "
                                f"{type(exc).__name__}: {exc}") from None
        return {"message_id": msg["Message-ID"], "to": msg["To"], "refused": sorted(refused)}

    def probe(self) -> str:
        """Connect, say EHLO, upgrade and log in as configured, then quit: nothing is sent."""
        try:
            with self._connect() as smtp:
                smtp.noop()
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        mode = "TLS" if self.settings.ssl else "STARTTLS" if self.settings.starttls else "plain"
        auth = ", AUTH ok" if self.settings.username else ""
        return f"SMTP {self.settings.host}:{self.settings.port} ({mode}{auth})"

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context(cafile=s.ca_file) if (s.ssl or s.starttls) else None
        local = socket.getfqdn() or "localhost"
        if not s.host:
            raise smtplib.SMTPConnectError(0, "email.host is not set")
        if s.ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, local_hostname=local, timeout=s.timeout_seconds,
                                                  context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, local_hostname=local, timeout=s.timeout_seconds)
        try:
            smtp.ehlo()
            if not s.ssl and s.starttls:
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password.get_secret_value() if s.password else "")
        except BaseException:
            smtp.close()
            raise
        return smtp
