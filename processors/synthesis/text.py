"""Text a voice can speak: markup and emoji removed, cut into sentence chunks for streaming."""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

from processors.constants import MAX_CHUNK_CHARACTERS, MAX_REQUEST_TEXT_CHARACTERS, MIN_TAIL_CHUNK_CHARACTERS
from processors.errors import EmptyTextError, InvalidTextError, TextTooLongError

# An SSML/HTML-like tag: "<" right before a name (or "/name"), so "a < b" stays text.
_TAG = re.compile(r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>")
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…।॥])|(?<=[.!?…।॥][\"'”’»)\]]))\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:،、])\s+")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\s*\n\s*")
_JOINERS = frozenset("\u200c\u200d")  # zero-width (non-)joiner: part of Malayalam and other Indic spelling
# Categories never spoken: other symbols (emoji, dingbats), modifier symbols (skin tones), enclosing
# marks (keycaps), controls, surrogates, private use, unassigned, and format characters.
_UNSPEAKABLE_CATEGORIES = frozenset({"So", "Sk", "Me", "Cc", "Cs", "Co", "Cn", "Cf"})
_VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")


@dataclass(frozen=True)
class TextChunk:
    """Chunk ``index`` (0-based) of ``count`` chunks of one request, spoken as its own event."""

    index: int
    count: int
    text: str


def normalise_text(text: str, max_characters: int = MAX_REQUEST_TEXT_CHARACTERS) -> str:
    """The speakable part of ``text``: tags and entities resolved, emoji and symbols dropped.

    Paragraph breaks survive as single newlines; other whitespace collapses to one space. Raises
    ``TextTooLongError`` for input longer than ``max_characters`` (checked before any work) and
    ``EmptyTextError`` when nothing speakable remains.
    """
    if not isinstance(text, str):
        raise InvalidTextError(f"text must be a string, got {type(text).__name__}")
    if len(text) > max_characters:
        raise TextTooLongError(f"text is {len(text):,} characters long; at most {max_characters:,} per request")
    without_markup = _TAG.sub(" ", html.unescape(_TAG.sub(" ", text)))
    speakable = _drop_unspeakable(unicodedata.normalize("NFC", _VARIATION_SELECTORS.sub("", without_markup)))
    collapsed = _BLANK_LINES.sub("\n", _SPACES.sub(" ", speakable)).strip()
    if not any(character.isalnum() for character in collapsed):
        raise EmptyTextError("there is nothing to speak once markup, emoji and symbols are removed")
    return collapsed


def split_sentences(text: str) -> list[str]:
    """Sentences of already-normalised text, split after . ! ? … । ॥ and at line breaks."""
    return [
        sentence.strip()
        for line in text.split("\n")
        for sentence in _SENTENCE_END.split(line)
        if sentence.strip()
    ]


def chunk_text(text: str, max_chunk_characters: int = MAX_CHUNK_CHARACTERS,
               min_tail_characters: int = MIN_TAIL_CHUNK_CHARACTERS) -> list[TextChunk]:
    """Normalise ``text`` and pack whole sentences into chunks of at most ``max_chunk_characters``.

    A sentence longer than a chunk is cut at clause punctuation, then between words, and only
    then mid-word. A last chunk under ``min_tail_characters`` joins the one before (which may
    then run that much over the limit): a second or two of speech is too little to carry a watermark.
    """
    if max_chunk_characters < 1:
        raise InvalidTextError(f"chunks must hold at least one character, got {max_chunk_characters}")
    pieces = [
        piece
        for sentence in split_sentences(normalise_text(text))
        for piece in _fit(sentence, max_chunk_characters)
    ]
    packed: list[str] = []
    for piece in pieces:
        if packed and len(packed[-1]) + 1 + len(piece) <= max_chunk_characters:
            packed[-1] = f"{packed[-1]} {piece}"
        else:
            packed.append(piece)
    if len(packed) > 1 and len(packed[-1]) < min_tail_characters:
        tail = packed.pop()
        packed[-1] = f"{packed[-1]} {tail}"
    return [TextChunk(index=index, count=len(packed), text=chunk) for index, chunk in enumerate(packed)]


def _drop_unspeakable(text: str) -> str:
    kept: list[str] = []
    for position, character in enumerate(text):
        if character in _JOINERS:
            if _is_letter(kept[-1] if kept else "") and _is_letter(text[position + 1 : position + 2]):
                kept.append(character)
        elif character in "\n\t " or unicodedata.category(character) not in _UNSPEAKABLE_CATEGORIES:
            kept.append(character)
        else:
            kept.append(" ")
    return "".join(kept)


def _is_letter(character: str) -> bool:
    return bool(character) and unicodedata.category(character)[0] in "LM"


def _fit(sentence: str, limit: int) -> list[str]:
    """Cut one sentence into pieces of at most ``limit`` characters, at the gentlest boundary available."""
    if len(sentence) <= limit:
        return [sentence]
    for boundary in (_CLAUSE_END, re.compile(r"\s+")):
        parts = boundary.split(sentence)
        if len(parts) > 1:
            pieces: list[str] = []
            for part in parts:
                if pieces and len(pieces[-1]) + 1 + len(part) <= limit:
                    pieces[-1] = f"{pieces[-1]} {part}"
                else:
                    pieces.extend(_fit(part, limit))
            return pieces
    return [sentence[start : start + limit] for start in range(0, len(sentence), limit)]
