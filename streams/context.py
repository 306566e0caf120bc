"""What every stage handler gets passed: repositories, the object store, loaded models, limits."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
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
    """Speaker encoder, synthesis engine, VAD and quality scorers, each loaded once on first use.

    Imports happen on first use too: a unit test of one handler should not pay for every model.
    """

    def __init__(self, base_voice: str = "espeak", piper_voice: Path | None = None):
        self.base_voice = base_voice
        self.piper_voice = piper_voice
        self._lock = threading.RLock()
        self._loaded: dict[str, object] = {}

    def _once(self, name: str, load):
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = load()
            return self._loaded[name]

    @property
    def encoder(self):
        from processors.speaker import SpeakerEncoder

        return self._once("encoder", SpeakerEncoder)

    @property
    def engine(self):
        from processors.cloning import default_engine

        return self._once("engine", lambda: default_engine(self.base_voice, self.piper_voice))

    @property
    def vad(self):
        from processors.vad import SpeechDetector

        return self._once("vad", SpeechDetector)

    @property
    def dnsmos(self):
        from processors.scoring import DnsmosEstimator

        return self._once("dnsmos", DnsmosEstimator)

    @property
    def scorer(self):
        from processors.scoring import QualityScorer, WhisperTranscriber

        return self._once("scorer", lambda: QualityScorer(self.encoder, WhisperTranscriber(), self.dnsmos))

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
