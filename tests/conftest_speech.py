"""Session fixtures of real human speech and the models that listen to it.

Load with ``pytest_plugins = ["tests.conftest_speech"]``. The first run fetches two Debian packages
(about 50 MB) into the speech cache; later runs read the cache.
"""

from __future__ import annotations

import numpy as np
import pytest

from infra.speech_assets import czech_actor_utterance, heldout_utterance, reference_utterance
from processors.voice.speaker import SpeakerEncoder
from processors.synthesis.base_voices import EspeakTTS
from processors.voice.profile import VoiceProfile, build_profile

PROFILE_CHUNK_S = 6.0
PROFILE_CHUNKS = 5


@pytest.fixture(scope="session")
def speaker_encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


@pytest.fixture(scope="session")
def espeak_tts() -> EspeakTTS:
    return EspeakTTS()


@pytest.fixture(scope="session")
def english_reference_speech() -> tuple[np.ndarray, int]:
    """30 s of one US-English female voice (Asterisk "Allison"), float32 mono at 16 kHz."""
    return reference_utterance(PROFILE_CHUNK_S * PROFILE_CHUNKS)


@pytest.fixture(scope="session")
def english_speech_8s(english_reference_speech: tuple[np.ndarray, int]) -> np.ndarray:
    """The first 8 s of the English reference, at its 16 kHz rate."""
    samples, sample_rate_hz = english_reference_speech
    return samples[: 8 * sample_rate_hz]


@pytest.fixture(scope="session")
def speech_detector():
    from processors.audio.vad import SpeechDetector

    return SpeechDetector()


@pytest.fixture(scope="session")
def dnsmos_estimator():
    from processors.scoring.quality import DnsmosEstimator

    return DnsmosEstimator()


@pytest.fixture(scope="session")
def english_heldout_speech() -> tuple[np.ndarray, int]:
    """12 s of the same voice saying other prompts than the reference speech."""
    return heldout_utterance(12.0)


@pytest.fixture(scope="session")
def czech_male_speech() -> tuple[np.ndarray, int]:
    """12 s of another real speaker (Fish Fillets' big fish, Czech, male), float32 mono at 16 kHz."""
    return czech_actor_utterance("big_fish", 12.0)


@pytest.fixture(scope="session")
def english_profile_chunks(english_reference_speech: tuple[np.ndarray, int]) -> list[np.ndarray]:
    """The reference speech cut into five 6 s samples, as a user's enrolment would arrive."""
    samples, sample_rate_hz = english_reference_speech
    chunk_length = int(PROFILE_CHUNK_S * sample_rate_hz)
    return [samples[index * chunk_length : (index + 1) * chunk_length] for index in range(PROFILE_CHUNKS)]


@pytest.fixture(scope="session")
def english_voice_profile(
    english_profile_chunks: list[np.ndarray],
    english_reference_speech: tuple[np.ndarray, int],
    speaker_encoder: SpeakerEncoder,
) -> VoiceProfile:
    return build_profile(english_profile_chunks, english_reference_speech[1], speaker_encoder)


@pytest.fixture(scope="session")
def kokoro_synthesizer():
    from infra.kokoro_assets import kokoro_synthesis_model_path, kokoro_vocabulary
    from processors.synthesis.kokoro import KokoroSynthesizer

    return KokoroSynthesizer(kokoro_synthesis_model_path(), kokoro_vocabulary())


@pytest.fixture(scope="session")
def stock_voices(kokoro_synthesizer, speaker_encoder):
    """Kokoro's 54 stock packs with their speaker embeddings (computed on the first run, then cached)."""
    from infra.kokoro_assets import load_stock_voices
    from processors.constants import PACK_EMBEDDING_PHRASES
    from processors.synthesis.kokoro import embed_stock_packs

    return load_stock_voices(
        lambda stock: embed_stock_packs(kokoro_synthesizer, speaker_encoder, stock, PACK_EMBEDDING_PHRASES)
    )


@pytest.fixture(scope="session")
def kokoro_engine(kokoro_synthesizer, stock_voices):
    from processors.synthesis.kokoro import KokoroEngine

    return KokoroEngine(kokoro_synthesizer, stock_voices)


@pytest.fixture(scope="session")
def english_kokoro_profile(english_voice_profile, stock_voices) -> VoiceProfile:
    """The English reference speaker's profile with its instant Kokoro voice."""
    from processors.voice.tiers import with_instant_voice

    return with_instant_voice(english_voice_profile, stock_voices)


@pytest.fixture(scope="session")
def whisper_transcriber():
    from processors.scoring.quality import WhisperTranscriber

    return WhisperTranscriber()


@pytest.fixture(scope="session")
def independent_encoder():
    """CAM++: a speaker encoder no voxflow fit optimises against, to judge fitted voices honestly."""
    from infra.campplus_assets import campplus_encoder

    return campplus_encoder()
