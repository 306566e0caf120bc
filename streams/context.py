"""What every stage handler gets passed: repositories, the object store, loaded models, limits."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from infra.objectstore import ObjectStore
from infra.repositories import Repositories
from schemas.envelope import utc_now


@dataclass(frozen=True)
class Limits:
    synthesis_rate_limit: int = 30
    synthesis_rate_window_s: float = 60.0
    consent_failure_limit: int = 3
    consent_failure_window_s: float = 3600.0
    max_upload_bytes: int = 200 * 1024 * 1024


class VoiceModels:
    """Speaker encoder and synthesis engine, loaded once on first use (weights are tens of MB)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._encoder = None
        self._engine = None

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
                from processors.synthesis import WorldConversionEngine
                from processors.tts import EspeakTTS

                self._engine = WorldConversionEngine(EspeakTTS())
            return self._engine

    def warm_up(self) -> None:
        self.encoder  # noqa: B018 — property access loads the weights
        self.engine  # noqa: B018


@dataclass
class StageContext:
    repos: Repositories
    store: ObjectStore
    watermark_key: bytes
    models: VoiceModels = field(default_factory=VoiceModels)
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], datetime] = utc_now
