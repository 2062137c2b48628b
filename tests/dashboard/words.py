"""What a page says, and the UI's English words a Spanish page must not show (the catalog's
English of every dashboard word whose Spanish differs)."""

from __future__ import annotations

import html
import re

from smsgate.kit import i18n


def english_words() -> set[str]:
    """The UI's English texts that read differently in Spanish: a page in Spanish shows none."""
    english, spanish = i18n.named_words("en"), i18n.named_words("es")
    found = set()
    for name, text in english.items():
        if text in spanish[name] or len(text) < 4 or "{" in text:
            # a word both languages write alike (SMS, WhatsApp), a name the Spanish quotes
            # (Meta's "Access token"), or a fragment
            continue
        found.add(text)
    return found


def visible_text(page: str) -> str:
    """A page's words: not its scripts, nor the identifiers it shows as code (an event's
    name, sms:delivered, is the API's, in every language)."""
    page = re.sub(r"(?s)<(script|style|code)\b.*?</\1>", " ", page)
    page = re.sub(r"(?s)<[^>]+>", " ", page)  # attributes (values, ids) are not read
    return html.unescape(page)
