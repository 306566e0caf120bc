"""Text to Kokoro tokens: espeak-ng's IPA, clause by clause, with the few rewrites Kokoro needs.

Kokoro-82M learnt English from misaki's phoneme strings, which write r-coloured vowels out
(``ɚ`` → ``əɹ``, espeak-ng en-us's ``ɜː`` → ``ɜɹ``) and the English r as ``ɹ``. Rewriting more of
espeak-ng into misaki's symbols (diphthongs as ``A I O W Y``, affricates as ``ʤ ʧ``, no length
marks) cost words: Whisper WER 4.4 % against 4.0 % over 12 Harvard sentences × 3 voices. Other
languages keep espeak-ng's symbols. espeak-ng drops punctuation from its IPA, so text is split at
punctuation first and the marks are put back between the clauses: Kokoro pauses and intonates on them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from processors.constants import KOKORO_MAX_TOKENS
from processors.errors import InvalidTextError, UnsupportedLanguageError
from processors.synthesis.ipa import espeak_ipa

KOKORO_ESPEAK_VOICES = {"en": "en-us", "ml": "ml"}  # our language code -> espeak-ng voice for the IPA
_ENGLISH_REWRITES = (("ɜː", "ɜɹ"), ("ɚ", "əɹ"), ("ɝ", "ɜɹ"), ("r", "ɹ"))  # longest first
_JOINERS = (("\u200d", ""), ("\u0361", ""))  # zero-width joiner, tie bar: not in Kokoro's vocabulary
_CLAUSE = re.compile(r"([^,;:.!?…—]+)([,;:.!?…—]*)")
_SPOKEN_PUNCTUATION = frozenset(",;:.!?…—")


def phoneme_string(text: str, language: str = "en") -> str:
    """Kokoro's phoneme string for ``text`` (already normalised, as a ``TextChunk``'s text)."""
    voice = _espeak_voice(language)
    pieces = []
    for words, marks in _CLAUSE.findall(text):
        if words.strip():
            pieces.append(_to_kokoro_symbols(espeak_ipa(words.strip(), voice), language))
        spoken_marks = "".join(mark for mark in marks if mark in _SPOKEN_PUNCTUATION)
        if spoken_marks and pieces:
            pieces[-1] += spoken_marks[:2]
    phonemes = " ".join(piece for piece in pieces if piece).strip()
    if not any(symbol.isalpha() for symbol in phonemes):
        raise InvalidTextError(f"nothing pronounceable in {text[:60]!r}")
    return phonemes


def phoneme_tokens(text: str, language: str, vocabulary: Mapping[str, int]) -> list[int]:
    """Kokoro token ids for ``text`` (without the padding zeros); at most ``KOKORO_MAX_TOKENS``.

    ``vocabulary`` maps phoneme symbols to ids (``infra.kokoro_assets.kokoro_vocabulary()``);
    symbols it lacks are left out.
    """
    tokens = [vocabulary[symbol] for symbol in phoneme_string(text, language) if symbol in vocabulary]
    if len(tokens) > KOKORO_MAX_TOKENS:
        raise InvalidTextError(f"a chunk of {len(tokens)} phonemes is over Kokoro's {KOKORO_MAX_TOKENS}; send shorter sentences")
    return tokens


def supported_languages() -> frozenset[str]:
    return frozenset(KOKORO_ESPEAK_VOICES)


def _espeak_voice(language: str) -> str:
    if language not in KOKORO_ESPEAK_VOICES:
        raise UnsupportedLanguageError(
            f"Kokoro cannot speak language {language!r}; supported: {', '.join(sorted(KOKORO_ESPEAK_VOICES))}"
        )
    return KOKORO_ESPEAK_VOICES[language]


def _to_kokoro_symbols(ipa: str, language: str) -> str:
    for espeak_symbols, kokoro_symbols in (*_ENGLISH_REWRITES, *_JOINERS) if language == "en" else _JOINERS:
        ipa = ipa.replace(espeak_symbols, kokoro_symbols)
    return " ".join(ipa.split())
