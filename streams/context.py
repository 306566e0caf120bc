"""What every stage handler gets passed: repositories, the object store, loaded models, limits."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from infra.objectstore import ObjectStore
from infra.repositories import Repositories
from schemas.envelope import utc_now

log = logging.getLogger("voxflow.models")


@dataclass(frozen=True)
class Limits:
    synthesis_rate_limit: int = 30
    synthesis_rate_window_s: float = 60.0
    consent_failure_limit: int = 3
    consent_failure_window_s: float = 3600.0
    max_upload_bytes: int = 200 * 1024 * 1024
    require_spoken_consent: bool = False
    # same speaker measures 0.92-0.96 on Resemblyzer, different speakers 0.44-0.71
    spoken_consent_min_similarity: float = 0.80
    protected_voice_min_similarity: float = 0.80


class VoiceModels:
    """Speaker encoder, synthesis engine, VAD and quality scorers, each loaded once on first use."""

    def __init__(self, base_voice: str = "espeak"):
        self.base_voice = base_voice
        self._lock = threading.RLock()
        self._encoder = None
        self._engine = None
        self._scorer = None
        self._vad = None
        self._dnsmos = None

    @property
    def encoder(self):
        with self._lock:
            if self._encoder is None:
                from processors.speaker import SpeakerEncoder

                self._encoder = SpeakerEncoder()
            return self._encoder

    @property
    def engine(self):
        with self._lock:
            if self._engine is None:
                from processors.cloning import default_engine

                self._engine = default_engine(self.base_voice)
            return self._engine

    @property
    def vad(self):
        with self._lock:
            if self._vad is None:
                from processors.vad import SpeechDetector

                self._vad = SpeechDetector()
            return self._vad

    @property
    def dnsmos(self):
        with self._lock:
            if self._dnsmos is None:
                from processors.scoring import DnsmosEstimator

                self._dnsmos = DnsmosEstimator()
            return self._dnsmos

    @property
    def scorer(self):
        with self._lock:
            if self._scorer is None:
                from processors.scoring import QualityScorer, WhisperTranscriber

                self._scorer = QualityScorer(self.encoder, WhisperTranscriber(), self.dnsmos)
            return self._scorer

    def warm_up(self) -> None:
        for model in (self.encoder, self.engine, self.scorer, self.vad):
            log.info("loaded %s", type(model).__name__)


@dataclass
class StageContext:
    repos: Repositories
    store: ObjectStore
    watermark_key: bytes
    models: VoiceModels = field(default_factory=VoiceModels)
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], datetime] = utc_now
