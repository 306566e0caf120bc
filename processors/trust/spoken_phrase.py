"""Did the owner's statement recording say the required consent phrase, naming this operator?

The phrase comes from a template naming the operator the owner allows (``{operator}``); the owner's
identity is already bound by the Ed25519 signature, so the phrase does not have to speak it. English
is checked on words (Whisper tiny.en: 1 − word error rate against the phrase); every other language
on phonemes (hama's recogniser on the recording against hama's G2P of the phrase: 1 − phoneme error
rate), since no recogniser here writes those languages' words reliably.

A statement recorded for another operator differs from ours by the name alone (one word in eleven:
0.91), so the name is scored on its own too: how closely it appears anywhere in what was heard, by
letters (Whisper writes "VoxFlow", "Vox Flow" or "Voxflow") or by phonemes. Every score lies in
[0, 1]: 1 is exact, 0 nothing of it (or more insertions than symbols).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from processors.errors import InvalidConsentError, ScorerUnavailableError
from processors.scoring.phonemes import PhonemeRecognizer, phoneme_error_rate, phoneme_symbols
from processors.scoring.quality import WhisperTranscriber, normalise_words, word_error_rate

DEFAULT_OPERATOR_NAME = "Voxflow"
DEFAULT_PHRASE_TEMPLATE = "I allow {operator} to create a synthetic copy of my voice."
PhraseMethod = Literal["whisper_words", "hama_phonemes"]
_QUOTED_CHARACTERS = 200  # of what was heard, in a rejection reason


@dataclass(frozen=True)
class PhraseMatch:
    """How a recording matched the phrase by ``method``; ``heard`` is Whisper's words or hama's IPA.

    ``score`` is the whole phrase's, ``operator_score`` the operator's name's best match anywhere in it.
    """

    method: PhraseMethod
    score: float
    operator_score: float
    heard: str


@dataclass(frozen=True)
class PhraseThresholds:
    """The least ``score`` and ``operator_score`` a recording needs, for one method."""

    phrase: float
    operator: float


def consent_phrase(template: str, operator: str) -> str:
    """The phrase the owner must sign and speak: ``template`` with ``{operator}`` filled in."""
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    if fields != {"operator"}:
        raise InvalidConsentError(
            f"the consent phrase template must name {{operator}} and nothing else, got {template!r}")
    if not operator.strip():
        raise InvalidConsentError("the operator named in the consent phrase must not be blank")
    return template.format(operator=operator.strip())


def is_the_phrase(statement_text: str, phrase: str) -> bool:
    """Whether the signed statement is the phrase, ignoring case, punctuation and spacing."""
    return normalise_words(statement_text) == normalise_words(phrase)


def word_match(phrase: str, operator: str, transcript: str) -> PhraseMatch:
    return PhraseMatch("whisper_words", _clamped(1.0 - word_error_rate(phrase, transcript)),
                       best_stretch_match(_letters(operator), _letters(transcript)), transcript)


def phoneme_match(phrase_ipa: str, operator_ipa: str, heard_ipa: str) -> PhraseMatch:
    return PhraseMatch("hama_phonemes", _clamped(1.0 - phoneme_error_rate(phrase_ipa, heard_ipa)),
                       best_stretch_match(phoneme_symbols(operator_ipa), phoneme_symbols(heard_ipa)), heard_ipa)


def best_stretch_match(wanted: Sequence[str], heard: Sequence[str]) -> float:
    """1 − the fewest edits that turn ``wanted`` into some stretch of ``heard``, per symbol of ``wanted``."""
    if not wanted:
        raise InvalidConsentError("there is nothing to look for")
    previous = [0] * (len(heard) + 1)  # a stretch may start anywhere in what was heard
    for row, symbol in enumerate(wanted, start=1):
        current = [row]
        for column, other in enumerate(heard, start=1):
            current.append(min(previous[column - 1] + (symbol != other), previous[column] + 1, current[column - 1] + 1))
        previous = current
    return _clamped(1.0 - min(previous) / len(wanted))  # ... and end anywhere


def phrase_mismatch(match: PhraseMatch, operator: str, thresholds: PhraseThresholds) -> str | None:
    """Why the recording does not say the phrase naming ``operator``; None when both scores reach their thresholds."""
    heard = match.heard[:_QUOTED_CHARACTERS]
    if match.score < thresholds.phrase:
        return (f"wrong phrase: the recording does not say the consent phrase (match {match.score:.2f} < "
                f"{thresholds.phrase:.2f} by {match.method}; heard {heard!r})")
    if match.operator_score < thresholds.operator:
        return (f"wrong phrase: the recording does not name the operator {operator!r} (name match "
                f"{match.operator_score:.2f} < {thresholds.operator:.2f} by {match.method}; heard {heard!r})")
    return None


def speaker_mismatch(similarity: float | None, min_similarity: float) -> str | None:
    """Why the statement is someone else's voice; None when it is close enough, or not yet comparable (None)."""
    if similarity is None or similarity >= min_similarity:
        return None
    return (f"wrong speaker: the statement is not spoken by the voice's speaker "
            f"(similarity {similarity:.2f} < {min_similarity:.2f})")


class SpokenPhraseScorer:
    """Scores a recording against a phrase: Whisper's words where it knows the language, hama's phonemes elsewhere.

    The recogniser and the G2P model load once per instance; raises ``ScorerUnavailableError`` when
    hama is not installed.
    """

    def __init__(self, transcriber: WhisperTranscriber, recognizer: PhonemeRecognizer) -> None:
        try:
            import hama
        except ImportError as error:
            raise ScorerUnavailableError("the spoken phrase check needs hama (pip install hama==1.7.0)") from error
        self._transcriber = transcriber
        self._recognizer = recognizer
        self._g2p = hama.G2PModel()

    def method_for(self, language: str) -> PhraseMethod:
        return "whisper_words" if language in self._transcriber.supported_languages() else "hama_phonemes"

    def score(self, samples: np.ndarray, sample_rate_hz: int, phrase: str, operator: str, language: str) -> PhraseMatch:
        """How well mono ``[n]`` speech at any rate says ``phrase`` (written in ``language``) and names ``operator``."""
        if self.method_for(language) == "whisper_words":
            return word_match(phrase, operator, self._transcriber.transcribe(samples, sample_rate_hz, language))
        return phoneme_match(self.phonemes(phrase), self.phonemes(operator),
                             self._recognizer.recognize(samples, sample_rate_hz))

    def phonemes(self, text: str) -> str:
        """hama's IPA of ``text``, word by word: its G2P turns punctuation into phonemes, so words go in bare."""
        return " ".join(self._g2p(word).ipa.replace(" ", "") for word in normalise_words(text))


def _letters(text: str) -> list[str]:
    return list("".join(normalise_words(text)))


def _clamped(score: float) -> float:
    return round(min(1.0, max(0.0, score)), 4)
