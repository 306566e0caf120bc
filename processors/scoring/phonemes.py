"""Which sounds were spoken: hama's phoneme recogniser, espeak-ng's reference IPA, and the phoneme error rate.

hama (Apache-2.0) is a CTC phoneme recogniser over raw 16 kHz audio, run by its own CPU engine;
its weights ship in the wheel. It emits one IPA token per phoneme (diphthongs and affricates as
one token, ``d͡ʒ`` with a tie bar) and word boundaries. espeak-ng writes the same sounds with
stress and length marks, no tie bars, and a few symbols of its own (``ᵻ``, ``ɜː`` for ``ɝ``), so
both sides are rewritten into one symbol inventory before they are compared.
"""

from __future__ import annotations

import unicodedata

import numpy as np

from processors.audio.codec_quality import resample, to_mono
from processors.constants import ESPEAK_VOICES
from processors.errors import InvalidTextError, ScorerUnavailableError, UnsupportedLanguageError
from processors.scoring.quality import edit_distance
from processors.synthesis.ipa import espeak_ipa

HAMA_SAMPLE_RATE_HZ = 16000
HAMA_WORD_BOUNDARY = "|"  # between words in hama's ``word_phoneme_text``
_IGNORED_MARKS = frozenset("ˈˌːˑ\u0306\u0361\u035c\u200d")  # stress, length, extra-short, tie bars, joiner
_EQUIVALENT_SYMBOLS = {  # spelling variants → one symbol
    "g": "ɡ",  # ASCII g (hama) and IPA script g (espeak-ng)
    "ᵻ": "ɪ",  # espeak-ng's reduced close vowel; hama has no such symbol
    "ɜ": "ɚ",  # r-coloured mid central vowel: espeak-ng en-us writes ɜː (stressed) and ɚ, hama ɝ and ɚ
    "ɝ": "ɚ",
    "ɐ": "ə",  # espeak-ng's unstressed open central vowel, which hama hears as ə
}
_MULTI_CHARACTER_PHONEMES = frozenset({"aɪ", "aʊ", "eɪ", "oʊ", "ɔɪ", "tʃ", "dʒ"})  # once tie bars are gone


class PhonemeRecognizer:
    """hama's waveform phoneme recogniser, loaded once per instance; one CPU thread, 0.1-0.2 s per second of audio.

    Raises ``ScorerUnavailableError`` when hama is not installed.
    """

    def __init__(self) -> None:
        try:
            import hama
        except ImportError as error:
            raise ScorerUnavailableError("phoneme recognition needs hama (pip install hama==1.7.0)") from error
        self._model = hama.ASRModel()

    def recognize(self, samples: np.ndarray, sample_rate_hz: int) -> str:
        """IPA of mono ``[n]`` (or ``[channels, n]``) speech at any rate, words separated by spaces (``"ðə kwɪk"``).

        Silence gives ``""``.
        """
        clip = resample(to_mono(samples), sample_rate_hz, HAMA_SAMPLE_RATE_HZ)
        result = self._model.transcribe_waveform(clip, HAMA_SAMPLE_RATE_HZ)
        words = ("".join(_phoneme_tokens(word)) for word in result.word_phoneme_text.split(HAMA_WORD_BOUNDARY))
        return " ".join(word for word in words if word)


def reference_phonemes(text: str, language: str) -> str:
    """espeak-ng's IPA for ``text`` in ``language`` (a code of ``ESPEAK_VOICES``: ``"en"`` is en-us).

    Clauses and words are separated by single spaces; punctuation is not spoken, so it is not written.
    """
    if language not in ESPEAK_VOICES:
        raise UnsupportedLanguageError(
            f"no espeak-ng voice for language {language!r}; supported: {', '.join(sorted(ESPEAK_VOICES))}"
        )
    if not text.strip():
        raise InvalidTextError("there is no text to phonemise")
    return espeak_ipa(text, ESPEAK_VOICES[language])


def phoneme_error_rate(reference_ipa: str, hypothesis_ipa: str) -> float:
    """(substitutions + deletions + insertions) / reference phonemes, over :func:`phoneme_symbols`.

    0 is a perfect match; an empty hypothesis scores 1; insertions can take it above 1.

    Raises ``InvalidTextError`` when the reference has no phonemes.
    """
    reference = phoneme_symbols(reference_ipa)
    if not reference:
        raise InvalidTextError("the reference IPA has no phonemes to compare with")
    return edit_distance(reference, phoneme_symbols(hypothesis_ipa)) / len(reference)


def phoneme_symbols(ipa: str) -> list[str]:
    """The phonemes of an IPA string, word by word: ``"dʒˈʌmps"`` → ``["dʒ", "ʌ", "m", "p", "s"]``.

    Stress, length and tie marks, spaces and punctuation are dropped; spelling variants become one
    symbol (``_EQUIVALENT_SYMBOLS``); diacritics and modifier letters (``ʰ``, ``̃``) stay on their
    phoneme; the diphthongs and affricates of ``_MULTI_CHARACTER_PHONEMES`` count as one phoneme.
    """
    return [symbol for word in unicodedata.normalize("NFD", ipa).split() for symbol in _word_symbols(word)]


def _word_symbols(word: str) -> list[str]:
    symbols: list[str] = []
    for character in word:
        if character in _IGNORED_MARKS or unicodedata.category(character)[0] not in "LM":
            continue
        character = _EQUIVALENT_SYMBOLS.get(character, character)
        if symbols and (_is_modifier(character) or symbols[-1] + character in _MULTI_CHARACTER_PHONEMES):
            symbols[-1] += character
        else:
            symbols.append(character)
    return symbols


def _is_modifier(character: str) -> bool:
    """A combining diacritic or modifier letter, which belongs to the phoneme before it."""
    return unicodedata.category(character) in ("Mn", "Lm")


def _phoneme_tokens(hama_word: str) -> list[str]:
    """The phoneme tokens of one space-separated hama word, without its ``<unk>``-style specials."""
    return [token for token in hama_word.split() if not (token.startswith("<") and token.endswith(">"))]
