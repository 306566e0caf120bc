"""What every stage handler gets passed: repositories, the object store, loaded models, limits."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Protocol

from infra.objectstore import ObjectStore
from infra.provenance_keys import ProvenanceKeys
from infra.refiner import StyleFit, SubprocessRefiner
from processors.audio.media import FfmpegMediaEngine, MediaEngine
from processors.constants import REFINEMENT_MAX_WER_INCREASE, REFINEMENT_STEPS
from processors.trust.spoken_phrase import (DEFAULT_OPERATOR_NAME, DEFAULT_PHRASE_TEMPLATE, PhraseThresholds,
                                            consent_phrase)
from processors.trust.text_policy import TextPolicy
from schemas.envelope import Event, utc_now
from streams.ports import StageRepositories

log = logging.getLogger("voxflow.models")


@dataclass(frozen=True)
class Limits:
    synthesis_rate_limit: int = 30
    synthesis_rate_window_s: float = 60.0
    voice_synthesis_rate_limit: int = 20
    voice_synthesis_rate_window_s: float = 60.0
    text_policy: TextPolicy = field(default_factory=TextPolicy)  # deny patterns on synthesis text
    consent_failure_limit: int = 3
    consent_failure_window_s: float = 3600.0
    max_upload_bytes: int = 200 * 1024 * 1024
    # a new voice needs a recording of its owner speaking the consent phrase (Settings may relax it, loudly)
    require_spoken_consent: bool = True
    # same speaker measures 0.92-0.96 on Resemblyzer, different speakers 0.44-0.71
    spoken_consent_min_similarity: float = 0.80
    spoken_consent_operator: str = DEFAULT_OPERATOR_NAME
    spoken_consent_phrase: str = consent_phrase(DEFAULT_PHRASE_TEMPLATE, DEFAULT_OPERATOR_NAME)
    spoken_consent_language: str = "en"  # the phrase's language: Whisper checks English words, hama other phonemes
    # Whisper, whole phrase: read by 5 Kokoro voices 1.00 (espeak-ng 0.82); a lookalike phrase 0.45, real speech
    # of other words 0.00. The operator's name by letters: 1.00 read right; another operator's phrase 0.43,
    # chance stretches of other speech up to 0.57.
    spoken_phrase_words: PhraseThresholds = PhraseThresholds(phrase=0.75, operator=0.75)
    # hama, whole phrase: Kokoro (en) 0.87-1.00, espeak-ng (de, it, cs) 0.40-0.44; wrong phrases by espeak-ng
    # 0.09-0.15, real speech of other words (cs, it, en) <= 0.17. The name by phonemes: right 0.57-1.00;
    # another operator's 0.29 (en), chance stretches up to 0.43 (one espeak-ng cs reading 0.57: a weak check)
    spoken_phrase_phonemes: PhraseThresholds = PhraseThresholds(phrase=0.35, operator=0.50)
    protected_voice_min_similarity: float = 0.80
    cross_tenant_min_similarity: float = 0.80  # the same speaker's voice under another tenant: held for review
    refinement_steps: int = REFINEMENT_STEPS  # 0: voices stay instant (no style fit)
    refinement_max_wer_increase: float = REFINEMENT_MAX_WER_INCREASE


class VoiceModels:
    """Speaker encoder, synthesis engines, VAD and quality scorers, each loaded once on first use.

    ``engine_name`` is the default engine ("kokoro", or "espeak"/"piper" for WORLD conversion of
    that base voice); a request may name another. Imports happen on first use too: a unit test of
    one handler should not pay for every model.
    """

    def __init__(self, engine_name: str = "kokoro", base_voice: str = "espeak", piper_voice: Path | None = None,
                 kokoro_threads: int = 2):
        self.engine_name = engine_name
        self.base_voice = base_voice
        self.piper_voice = piper_voice
        self.kokoro_threads = kokoro_threads
        self._lock = threading.RLock()
        self._loaded: dict[str, object] = {}

    def _once(self, name: str, load):
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = load()
            return self._loaded[name]

    @property
    def encoder(self):
        from processors.voice.speaker import SpeakerEncoder

        return self._once("encoder", SpeakerEncoder)

    @property
    def engine(self):
        """The default engine."""
        return self.engine_for(None)

    def engine_name_for(self, requested: str | None, language: str) -> str:
        """The engine a request gets: the one it names, else the default where it speaks ``language``, else espeak."""
        if requested is not None:
            return requested
        if self.engine_name == "kokoro":
            from processors.synthesis.kokoro_text import supported_languages

            return "kokoro" if language in supported_languages() else "espeak"
        return self.engine_name

    def engine_for(self, name: str | None):
        """The engine called ``name`` ("kokoro", "espeak", "piper"), or the default for ``None``."""
        name = name or self.engine_name
        if name == "kokoro":
            return self._once("engine:kokoro", self._load_kokoro_engine)
        from processors.cloning import default_engine

        base_voice = name if name in ("espeak", "piper") else self.base_voice
        return self._once(f"engine:{base_voice}", lambda: default_engine(base_voice, self.piper_voice))

    @property
    def kokoro(self):
        from infra.kokoro_assets import kokoro_synthesis_model_path, kokoro_vocabulary
        from processors.synthesis.kokoro import KokoroSynthesizer

        return self._once("kokoro", lambda: KokoroSynthesizer(kokoro_synthesis_model_path(), kokoro_vocabulary(),
                                                              self.kokoro_threads))

    @property
    def stock_voices(self):
        """Kokoro's stock packs with their speaker embeddings (computed once per machine, then cached)."""
        from infra.kokoro_assets import load_stock_voices
        from processors.constants import PACK_EMBEDDING_PHRASES
        from processors.synthesis.kokoro import embed_stock_packs

        def embed(stock):
            log.info("embedding Kokoro's %d stock voices once (cached afterwards)", len(stock.names))
            return embed_stock_packs(self.kokoro, self.encoder, stock, PACK_EMBEDDING_PHRASES)

        return self._once("stock_voices", lambda: load_stock_voices(embed))

    def _load_kokoro_engine(self):
        from processors.synthesis.kokoro import KokoroEngine

        return KokoroEngine(self.kokoro, self.stock_voices)

    @property
    def vad(self):
        from processors.audio.vad import SpeechDetector

        return self._once("vad", SpeechDetector)

    @property
    def dnsmos(self):
        from processors.scoring.quality import DnsmosEstimator

        return self._once("dnsmos", DnsmosEstimator)

    @property
    def transcriber(self):
        from processors.scoring.quality import WhisperTranscriber

        return self._once("transcriber", WhisperTranscriber)

    @property
    def spoken_phrase(self):
        from processors.scoring.phonemes import PhonemeRecognizer
        from processors.trust.spoken_phrase import SpokenPhraseScorer

        return self._once("spoken_phrase", lambda: SpokenPhraseScorer(self.transcriber, PhonemeRecognizer()))

    @property
    def scorer(self):
        from processors.scoring.quality import QualityScorer

        return self._once("scorer", lambda: QualityScorer(self.encoder, self.transcriber, self.dnsmos))

    @property
    def synthetic_speech(self):
        """AASIST: imports torch, so it loads on the first detection request, never in warm_up."""
        from processors.scoring.authenticity import SyntheticSpeechScorer

        return self._once("synthetic_speech", SyntheticSpeechScorer)

    def warm_up(self) -> None:
        for model in (self.encoder, self.engine, self.scorer, self.vad):
            log.info("loaded %s", type(model).__name__)


class StyleRefiner(Protocol):
    async def refine(self, *, style_table, target_embedding, phrases, steps: int, on_progress) -> StyleFit: ...


class ProgressPublisher(Protocol):
    async def publish(self, event: Event) -> None: ...


class KeyShredder(Protocol):
    async def destroy(self, scope: str) -> None: ...


@dataclass
class StageContext:
    repos: StageRepositories
    store: ObjectStore
    watermark_key: bytes
    models: VoiceModels = field(default_factory=VoiceModels)
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], datetime] = utc_now
    refiner: StyleRefiner = field(default_factory=SubprocessRefiner)
    progress: ProgressPublisher | None = None  # progress events go out as they happen, not with the outcome
    # the C2PA identity that signs every completed output; the worker always loads one (handler tests may not)
    provenance: ProvenanceKeys | None = None
    # the voices' data keys, which erasure destroys; the worker always gives them (handler tests may not)
    data_keys: KeyShredder | None = None
    media: MediaEngine = field(default_factory=FfmpegMediaEngine)  # dubbing's containers: probe, extract, mux

    async def report_progress(self, event: Event) -> None:
        if self.progress is not None:
            await self.progress.publish(event)
