"""Loopback receivers for handoff deliveries: a signed-webhook receiver and an SMTP sink.

Both are real servers on 127.0.0.1 that real client code talks to; both de-duplicate the way
a careful receiver does (webhook: on Idempotency-Key; e-mail: on Message-ID) and count the
repeats, so a test can assert "delivered exactly once" and see that a retry happened.

    with WebhookReceiver(secret="s3cret") as hook:
        hook.fail_first(2)                       # answer 500 twice, then 200
        ...
        hook.wait_for(1)                         # polls until one delivery was processed

    with SmtpSink() as smtp:
        ... EmailSettings(host="127.0.0.1", port=smtp.port, starttls=False) ...
        [msg] = smtp.wait_for(1)

Used by tests/test_handoff_*.py and benchmarks/fault_injection.py.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# -- webhook -------------------------------------------------------------------------------------

@dataclass
class WebhookRequest:
    """One POST as received."""

    key: str | None
    timestamp: str | None
    signature_ok: bool
    answered: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class WebhookReceiver:
    """Verifies X-Coach-Signature independently of the sender's code, dedupes on Idempotency-Key."""

    def __init__(self, secret: str, *, port: int = 0, tolerance: float = 300.0) -> None:
        self.secret = secret.encode()
        self.tolerance = tolerance
        self.requests: list[WebhookRequest] = []
        self.processed: dict[str, dict[str, Any]] = {}  # idempotency key -> body, the first time only
        self.duplicates = 0
        self._lock = threading.Lock()
        self._fail: list[int] = []
        self._hold = threading.Event()
        self._hold.set()
        self.holding = threading.Event()  # set while a request is being held
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                return

            def do_HEAD(self) -> None:  # noqa: N802 (http.server naming)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver._handle(raw, {k: v for k, v in self.headers.items()})
                if status == 200 and not receiver._hold.is_set():
                    # Processed, but the answer is held: the sender may die before it hears back.
                    receiver.holding.set()
                    receiver._hold.wait(30)
                body = json.dumps({"ok": status < 300}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the sender was killed while we held the answer

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/coach-hook"
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    # -- steering --------------------------------------------------------------------------------

    def fail_first(self, n: int, status: int = 500) -> None:
        """Answer the next `n` validly signed POSTs with `status` (without processing them)."""
        with self._lock:
            self._fail.extend([status] * n)

    def hold_next(self) -> None:
        """Process the next good POST, then hold its answer until `release()`."""
        self.holding.clear()
        self._hold.clear()

    def release(self) -> None:
        self._hold.set()

    # -- reading ---------------------------------------------------------------------------------

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll until `count` distinct deliveries were processed."""
        poll(lambda: len(self.processed) >= count, timeout, f"{count} webhook deliveries (have {len(self.processed)})")
        return list(self.processed.values())

    def _handle(self, raw: bytes, headers: dict[str, str]) -> int:
        h = {k.lower(): v for k, v in headers.items()}
        key, ts, sig = h.get("idempotency-key"), h.get("x-coach-timestamp"), h.get("x-coach-signature", "")
        expected = "sha256=" + hmac.new(self.secret, (ts or "").encode() + b"." + raw, hashlib.sha256).hexdigest()
        fresh = ts is not None and ts.isdigit() and abs(time.time() - int(ts)) <= self.tolerance
        ok = fresh and hmac.compare_digest(expected, sig)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = {}
        with self._lock:
            if not ok or not key:
                status = 401 if not ok else 400
            elif self._fail:
                status = self._fail.pop(0)
            else:
                status = 200
                if key in self.processed:
                    self.duplicates += 1  # a retry of something we already have: acknowledge, do nothing
                else:
                    self.processed[key] = body
            self.requests.append(WebhookRequest(key, ts, ok, status, body, h))
        return status


# -- SMTP ----------------------------------------------------------------------------------------

class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        refusal = self.sink._next_refusal()
        if refusal is not None:
            return refusal
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.sink._received(msg, list(envelope.rcpt_tos), getattr(session, "authenticated", False))
        return "250 Message accepted for delivery"


class SmtpSink:
    """An aiosmtpd server on loopback that keeps messages, de-duplicated on Message-ID.

    `auth` = (user, password) requires AUTH LOGIN/PLAIN; `tls_context` enables STARTTLS (and,
    with `require_starttls`, refuses to go on without it).
    """

    def __init__(self, *, port: int | None = None, auth: tuple[str, str] | None = None,
                 tls_context: Any = None, require_starttls: bool = False) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.port = port or free_port()
        self.messages: list[EmailMessage] = []  # every message, repeats included
        self.unique: dict[str, EmailMessage] = {}
        self.recipients: list[list[str]] = []
        self.authenticated: list[bool] = []
        self.refused = 0
        self._refusals: list[str] = []
        self._lock = threading.Lock()

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
            good = isinstance(data, LoginPassword) and auth is not None and \
                (data.login.decode(), data.password.decode()) == auth
            return AuthResult(success=good, handled=False)

        kwargs: dict[str, Any] = {}
        if auth is not None:
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=tls_context is not None)
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=require_starttls)
        self.controller = Controller(_SinkHandler(self), hostname="127.0.0.1", port=self.port,
                                     server_hostname="localhost", **kwargs)

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def refuse_next(self, reply: str = "451 4.3.0 Try again later", times: int = 1) -> None:
        """Answer the next `times` messages' DATA with `reply` (a 4xx: try later; a 5xx: never) and keep nothing."""
        with self._lock:
            self._refusals.extend([reply] * times)

    def _next_refusal(self) -> str | None:
        with self._lock:
            if not self._refusals:
                return None
            self.refused += 1
            return self._refusals.pop(0)

    @property
    def duplicates(self) -> int:
        return len(self.messages) - len(self.unique)

    def _received(self, msg: EmailMessage, rcpts: list[str], authenticated: bool) -> None:
        with self._lock:
            self.messages.append(msg)
            self.recipients.append(rcpts)
            self.authenticated.append(bool(authenticated))
            self.unique.setdefault(str(msg["Message-ID"]), msg)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Poll until `count` distinct messages arrived."""
        poll(lambda: len(self.unique) >= count, timeout, f"{count} e-mails (have {len(self.unique)})")
        return list(self.unique.values())


def self_signed_tls(tmp_dir: Any) -> tuple[Any, str]:
    """A server SSLContext and the path of its certificate (for the client's CA file), for 127.0.0.1/localhost."""
    import datetime as dt
    import ipaddress
    import ssl
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    folder = Path(tmp_dir)
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, str(cert_path)
