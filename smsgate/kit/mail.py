"""Sending one email through the operator's SMTP server (SMSGATE_SMTP_URL), with the standard
library's client in a thread: smtp://[user:password@]host[:port] (STARTTLS when the server
offers it, or always with ?starttls=required), smtps:// (TLS from the first byte)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

TIMEOUT = 15.0


class MailFailed(Exception):
    """The SMTP server could not be reached or refused the message."""


def _send(url: str, message: EmailMessage) -> None:
    parts = urlsplit(url)
    secure = parts.scheme == "smtps"
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise MailFailed(f"SMSGATE_SMTP_URL must be smtp:// or smtps://, not {parts.scheme!r}")
    port = parts.port or (465 if secure else 25)
    required = parse_qs(parts.query).get("starttls", [""])[0] == "required"
    context = ssl.create_default_context()
    try:
        client: smtplib.SMTP = (
            smtplib.SMTP_SSL(parts.hostname, port, timeout=TIMEOUT, context=context)
            if secure
            else smtplib.SMTP(parts.hostname, port, timeout=TIMEOUT)
        )
        with client:
            client.ehlo()
            if not secure and (client.has_extn("starttls") or required):
                client.starttls(context=context)
                client.ehlo()
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailFailed(str(exc)) from exc


async def send(url: str, sender: str, to: str, subject: str, body: str) -> None:
    """Send a plain-text email; MailFailed if it could not be handed to the server."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    await asyncio.to_thread(_send, url, message)
