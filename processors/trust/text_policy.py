"""Deny patterns on synthesis text: named regular expressions a text to speak may not match.

A cloned voice reading out a one-time code, or a "police officer" asking for a fine to be paid,
is the abuse voice cloning is used for. Each pattern has a name, which is what a refusal reports:
the text itself is never repeated. Texts are matched case-insensitively after their whitespace is
collapsed and typographic apostrophes are made plain. Patterns are Python regular expressions
(``re``, no timeout): keep their repetitions bounded, as the defaults' are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from processors.errors import ProcessorError


class InvalidDenyPatternError(ProcessorError):
    """A deny pattern has no name, is not a valid regular expression, or its list is not [{name, regex}]."""


@dataclass(frozen=True)
class DenyPattern:
    name: str
    regex: str


_DIGIT = r"(?:\d|zero|oh|one|two|three|four|five|six|seven|eight|nine)"
_CODE_DIGITS = rf"{_DIGIT}(?:[\s,.-]{{0,2}}{_DIGIT}){{3,7}}\b"  # 4 to 8 digits, written or spelled out
_CODE_KIND = (r"(?:verification|security|one-time|one time|login|log-in|sign-in|sign in|access|authentication"
              r"|confirmation|2fa|two-factor|two factor|otp)")
_ONE_TIME_CODE = (
    rf"\byour\s+(?:{_CODE_KIND}\s+)?(?:code|passcode|pin|otp)\s+is\s*:?\s*{_CODE_DIGITS}"
    rf"|\b{_CODE_KIND}\s+(?:code|passcode|pin)\s*(?:is|:)?\s*:?\s*{_CODE_DIGITS}"
)

_AUTHORITY = (r"\b(?:this is|i am|i'm|we are|we're|calling from|calling on behalf of)\s+(?:the\s+|your\s+|an?\s+)?"
              r"(?:officer|detective|sergeant|agent|inspector|constable|deputy|(?:[\w']+\s+){0,3}?"
              r"(?:police|sheriff|fbi|irs|hmrc|tax office|revenue service|social security|customs|immigration"
              r"|court|bank|fraud (?:department|team)|security team|government))\b")
_ASKING = (r"\b(?:please|kindly|you (?:must|need to|have to|will have to|are required to)|you're required to"
           r"|we need you to|i need you to|(?:read|tell|give) (?:me|us))\s+(?:[\w']+\s+){0,2}?")
_MONEY = (r"(?:pay|transfer|wire|send|deposit|buy)\b[^.?!]{0,80}?"
          r"(?:money|funds|payment|fine|fee|bail|gift cards?|bitcoin|crypto|dollars|pounds|euros|[$£€]\s?\d)")
_CREDENTIALS = (r"(?:confirm|verify|give|tell|read|share|provide|enter|say)\b[^.?!]{0,60}?"
                r"(?:password|passcode|pin\b|card number|account number|security code|cvv|social security number"
                r"|login|credentials|one-time code|verification code|the code)")
_DEMAND = rf"{_ASKING}(?:{_MONEY}|{_CREDENTIALS})"
_OFFICIAL_IMPERSONATION = rf"{_AUTHORITY}[\s\S]{{0,300}}?{_DEMAND}|{_DEMAND}[\s\S]{{0,300}}?{_AUTHORITY}"

DEFAULT_DENY_PATTERNS: tuple[DenyPattern, ...] = (
    # "your verification code is 482 913": a voice reading codes out is how account takeovers get past 2FA
    DenyPattern("one_time_code", _ONE_TIME_CODE),
    # someone claiming to be the police, a tax office or a bank, and asking for money or credentials
    DenyPattern("official_impersonation", _OFFICIAL_IMPERSONATION),
)


class TextPolicy:
    """Compiled deny patterns; ``denied_by(text)`` names the first one a text matches."""

    def __init__(self, patterns: Sequence[DenyPattern] = DEFAULT_DENY_PATTERNS):
        self.patterns = tuple(patterns)
        self._compiled = [(pattern.name, _compiled(pattern)) for pattern in self.patterns]

    def denied_by(self, text: str) -> str | None:
        """The name of the first pattern ``text`` matches; None when it may be spoken."""
        normalised = _normalised(text)
        return next((name for name, regex in self._compiled if regex.search(normalised)), None)


def deny_patterns_from_json(document: str) -> list[DenyPattern]:
    """Patterns from a JSON list of {"name", "regex"} objects (a settings file's contents)."""
    try:
        entries = json.loads(document)
        if not isinstance(entries, list):
            raise TypeError("not a list")
        return [DenyPattern(name=str(entry["name"]), regex=str(entry["regex"])) for entry in entries]
    except (ValueError, TypeError, KeyError) as error:
        raise InvalidDenyPatternError(f'deny patterns must be a JSON list of {{"name", "regex"}}: {error}') from error


def _compiled(pattern: DenyPattern) -> re.Pattern:
    if not pattern.name.strip():
        raise InvalidDenyPatternError(f"a deny pattern needs a name (regex {pattern.regex[:80]!r})")
    try:
        return re.compile(pattern.regex, re.IGNORECASE)
    except re.error as error:
        raise InvalidDenyPatternError(f"deny pattern {pattern.name!r} is not a valid regular expression: {error}") \
            from error


def _normalised(text: str) -> str:
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").split())
