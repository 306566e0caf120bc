"""One pydantic model per event type, grouped by pipeline stage.

Audio never rides in Kafka: events carry object-store keys (claim check).
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.envelope import Event

ObjectKey = str
# Every object lives under AREA/TENANT/VOICE/… (detection checks under checks/TENANT/…): an event may only
# name keys in its own tenant's (and voice's) part of the store, so no event reaches another tenant's audio.
DETECTION_AREAS = ("uploads", "syntheses", "checks")


def require_own_key(event: Event, key: str | None, area: str, *, per_voice: bool = True) -> None:
    """ValueError unless ``key`` lies under ``area/<tenant_id>/<voice_id>/`` (``area/<tenant_id>/`` if not ``per_voice``)."""
    if key is None:
        return
    prefix = f"{area}/{event.tenant_id}/" + (f"{event.voice_id}/" if per_voice else "")
    if not key.startswith(prefix) or "/../" in key[len(prefix) - 1:]:
        owner = "tenant and voice" if per_voice else "tenant"
        raise ValueError(f"object key {key[:200]!r} is outside the event's {owner}: it must start with {prefix!r}")
Purpose = Literal["narration", "assistant", "dubbing", "accessibility", "advertising", "research", "demo"]
DUBBING_PURPOSE: Purpose = "dubbing"  # what a dub's consent must grant


# --- upload / ingest -------------------------------------------------------------------------

class SampleUploaded(Event):
    """A voice sample was put in the object store; ingest decodes and quality-gates it."""

    type: Literal["sample.uploaded"] = "sample.uploaded"
    sample_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    object_key: ObjectKey = Field(min_length=1, max_length=1024)
    filename: str | None = Field(default=None, max_length=512)
    size_bytes: int = Field(ge=0)

    @model_validator(mode="after")
    def _key_is_the_tenants(self):
        require_own_key(self, self.object_key, "uploads")
        return self


class SampleAccepted(Event):
    """The sample passed the quality gate; its normalised 16 kHz mono WAV is at `normalised_key`."""

    type: Literal["sample.accepted"] = "sample.accepted"
    sample_id: uuid.UUID
    normalised_key: ObjectKey
    duration_s: float
    speech_s: float
    snr_db: float
    clipping_ratio: float
    dnsmos: float | None = Field(default=None, description="DNSMOS overall MOS of the speech, 1-5")
    speech_detector: str = Field(default="energy", description="how speech was found: silero-vad or energy")
    original_sample_rate_hz: int
    original_channels: int
    suggestions: list[str] = []

    @model_validator(mode="after")
    def _key_is_the_tenants(self):
        require_own_key(self, self.normalised_key, "samples")
        return self


class SampleRejected(Event):
    """The sample cannot be used; `reasons` say why, `suggestions` say how to do better."""

    type: Literal["sample.rejected"] = "sample.rejected"
    sample_id: uuid.UUID
    reasons: list[str]
    suggestions: list[str] = []


# --- consent ---------------------------------------------------------------------------------

class ConsentGranted(Event):
    """The voice owner's Ed25519-signed consent document.

    `signature` is Ed25519 over the canonical consent bytes (see processors.trust.consent); the owner's
    public key is the raw 32-byte key, base64.
    """

    type: Literal["consent.granted"] = "consent.granted"
    consent_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    owner_id: str = Field(min_length=1, max_length=256)
    owner_public_key: str = Field(description="raw Ed25519 public key, base64")
    purposes: list[str] = Field(min_length=1)
    languages: list[str] = Field(min_length=1)
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    max_uses: int | None = Field(default=None, ge=1)
    statement_text: str = Field(min_length=1, max_length=2000)
    statement_audio_key: ObjectKey | None = Field(
        default=None, description="the owner speaking the statement; must be the sampled voice")
    statement_audio_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="sha256 of that recording, covered by the signature")
    signature: str = Field(description="Ed25519 signature over the canonical document, base64")

    @model_validator(mode="after")
    def _key_is_the_tenants(self):
        require_own_key(self, self.statement_audio_key, "consents")
        return self


class ConsentRevoked(Event):
    """The owner withdraws a consent; signed with the same key over the canonical revocation."""

    type: Literal["consent.revoked"] = "consent.revoked"
    consent_id: uuid.UUID
    revoked_at: AwareDatetime
    signature: str = Field(description="Ed25519 signature over the canonical revocation, base64")


class SpokenStatementScores(BaseModel):
    """How the owner's recording of the consent statement scored: its words and its speaker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phrase_match: float = Field(ge=0.0, le=1.0, description="1 - error rate against the required phrase; 1 is exact")
    phrase_method: Literal["whisper_words", "hama_phonemes"] = Field(
        description="whisper_words: Whisper tiny.en's words (English); hama_phonemes: hama's phonemes (other languages)")
    phrase_min_match: float = Field(description="the least phrase_match accepted by this method")
    operator: str = Field(description="the operator the phrase names")
    operator_match: float = Field(
        ge=0.0, le=1.0, description="how closely the operator's name appears in what was heard (letters or phonemes)")
    operator_min_match: float
    heard: str = Field(description="what the recogniser heard: Whisper's words or hama's IPA")
    speaker_similarity: float | None = Field(
        default=None, description="Resemblyzer cosine to the voice's samples; None until they are known")
    speaker_min_similarity: float
    speaker_check: str = Field(description="when and against what the speaker was (or will be) compared")


class ConsentVerified(Event):
    """(v2) `spoken_statement` says how the statement recording scored; None when the consent carried none."""

    type: Literal["consent.verified"] = "consent.verified"
    latest_schema_version: ClassVar[int] = 2  # v2 added spoken_statement; v1 events still parse (it defaults to None)
    schema_version: int = 2
    consent_id: uuid.UUID
    owner_id: str
    purposes: list[str]
    languages: list[str]
    expires_at: AwareDatetime
    max_uses: int | None = None
    spoken_statement: SpokenStatementScores | None = None


class ConsentRejected(Event):
    """`reasons` name each failed check (for a statement recording: the score against its threshold); (v2)
    `spoken_statement` holds the recording's scores when it got as far as being scored."""

    type: Literal["consent.rejected"] = "consent.rejected"
    latest_schema_version: ClassVar[int] = 2  # v2 added spoken_statement; v1 events still parse (it defaults to None)
    schema_version: int = 2
    consent_id: uuid.UUID
    reasons: list[str]
    spoken_statement: SpokenStatementScores | None = None


class ConsentRevocationApplied(Event):
    type: Literal["consent.revocation_applied"] = "consent.revocation_applied"
    consent_id: uuid.UUID
    revoked_at: AwareDatetime


# --- adaptation ------------------------------------------------------------------------------

class AdaptationRequested(Event):
    """Build (or refine) the voice profile from the listed samples (all accepted ones if empty).

    Adaptation waits until the voice's consent is verified and every listed sample is decided.
    """

    type: Literal["adaptation.requested"] = "adaptation.requested"
    adaptation_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    sample_ids: list[uuid.UUID] = []


VoiceTier = Literal["instant", "refined"]


class VoiceReady(Event):
    """A new profile version can speak. `tier` "instant" comes first, in seconds (a blend of Kokoro's
    stock voices nearest the samples); "refined" follows when the style fit is done and kept.

    `similarity_objective` is the speaker encoder's cosine between the voice's renders and the samples
    (the encoder the fit optimises, so a flattering figure); null where not measured.
    """

    type: Literal["voice.ready"] = "voice.ready"
    latest_schema_version: ClassVar[int] = 2  # v2 added `tier` and `similarity_objective`; v1 events still parse (the fields default)
    schema_version: int = 2
    adaptation_id: uuid.UUID
    profile_version: int
    sample_count: int
    speech_s: float
    embedding_spread: float
    f0_median_hz: float
    inconsistent_sample_ids: list[uuid.UUID] = []
    adaptation_s: float
    tier: VoiceTier = "instant"
    similarity_objective: float | None = None


class AdaptationFailed(Event):
    """Adaptation (`tier` "instant") or its refinement ("refined") did not give a new version; the previous one stays."""

    type: Literal["adaptation.failed"] = "adaptation.failed"
    latest_schema_version: ClassVar[int] = 2  # v2 added `tier`; v1 events still parse (the fields default)
    schema_version: int = 2
    adaptation_id: uuid.UUID
    reason: str
    tier: VoiceTier = "instant"


class AdaptationRefinementRequested(Event):
    """Internal: fit the style of the instant voice at `profile_version` to the samples (`steps` of gradient ascent)."""

    type: Literal["adaptation.refinement_requested"] = "adaptation.refinement_requested"
    adaptation_id: uuid.UUID
    profile_version: int = Field(ge=1)
    steps: int = Field(ge=1, le=200)


class AdaptationProgress(Event):
    """Long adaptation work under way: `percent` done of `tier`, and the fit's objective so far."""

    type: Literal["adaptation.progress"] = "adaptation.progress"
    adaptation_id: uuid.UUID
    tier: VoiceTier
    percent: float = Field(ge=0, le=100)
    step: int = Field(ge=0)
    steps: int = Field(ge=1)
    similarity_objective: float | None = None


# --- synthesis / watermark -------------------------------------------------------------------

class SynthesisControls(BaseModel):
    """Prosody and voice transforms; gender/age shifts run from -1 (masculine/younger) to 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    speed: float = Field(default=1.0, ge=0.5, le=2.0)
    pitch_semitones: float = Field(default=0.0, ge=-12, le=12)
    energy_db: float = Field(default=0.0, ge=-12, le=12)
    emotion: Literal["neutral", "happy", "sad", "angry"] = "neutral"
    gender_shift: float = Field(default=0.0, ge=-1, le=1)
    age_shift: float = Field(default=0.0, ge=-1, le=1)


class VoiceWeight(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    voice_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    weight: float = Field(ge=0, le=1)


class SynthesisRequested(Event):
    """Speak `text` in the voice (`voice_id`, or a blend of 2-4 voices in `voice_mix`, weights summing to 1).

    Every voice used needs a verified consent covering `purpose` and `language`. Long texts are
    split into sentence chunks, each released as its own `synthesis.chunk_ready` event.
    """

    type: Literal["synthesis.requested"] = "synthesis.requested"
    latest_schema_version: ClassVar[int] = 2  # v2 added `engine`; v1 events still parse (the fields default)
    schema_version: int = 2
    synthesis_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    text: str = Field(min_length=1, max_length=200_000)
    language: str = Field(default="en", min_length=2, max_length=16)
    purpose: str = Field(min_length=1, max_length=64)
    controls: SynthesisControls = SynthesisControls()
    voice_mix: list[VoiceWeight] = Field(default=[], max_length=4)
    engine: Literal["kokoro", "espeak", "piper"] | None = Field(
        default=None, description="kokoro (neural, default), espeak (fastest: espeak-ng + WORLD), piper (+ WORLD); "
                                  "null: the worker's setting")


class SynthesisChunkRequested(Event):
    """Internal: speak chunk `chunk_index` (0-based) of `chunk_count` of an accepted synthesis."""

    type: Literal["synthesis.chunk_requested"] = "synthesis.chunk_requested"
    synthesis_id: uuid.UUID
    chunk_index: int = Field(ge=0)
    chunk_count: int = Field(ge=1)
    text: str = Field(min_length=1)
    requested_at: AwareDatetime


class SynthesisProduced(Event):
    """Internal: unwatermarked audio of one chunk is at `raw_key`; the watermark stage marks it."""

    type: Literal["synthesis.produced"] = "synthesis.produced"
    synthesis_id: uuid.UUID
    chunk_index: int = Field(ge=0)
    chunk_count: int = Field(ge=1)
    raw_key: ObjectKey
    sample_rate_hz: int
    duration_s: float
    rtf: float
    requested_at: AwareDatetime

    @model_validator(mode="after")
    def _key_is_the_tenants(self):
        require_own_key(self, self.raw_key, "syntheses")
        return self


class SynthesisChunkReady(Event):
    """Chunk `chunk_index` of `chunk_count` is watermarked at `object_key`: a player can start."""

    type: Literal["synthesis.chunk_ready"] = "synthesis.chunk_ready"
    synthesis_id: uuid.UUID
    chunk_index: int
    chunk_count: int
    object_key: ObjectKey
    sample_rate_hz: int
    duration_s: float
    latency_s: float

    @model_validator(mode="after")
    def _key_is_the_tenants(self):
        require_own_key(self, self.object_key, "syntheses")
        return self


class SynthesisCompleted(Event):
    """The whole watermarked result is at `object_key`; `watermark_payload` (hex) traces it back.

    v2 comes before the output is scored: its scores arrive afterwards in `synthesis.scored`, and the
    score fields here (v1 carried them) stay null.
    """

    latest_schema_version: ClassVar[int] = 2  # v2 moved the scores to synthesis.scored; v1 events still parse
    schema_version: int = 2
    type: Literal["synthesis.completed"] = "synthesis.completed"
    synthesis_id: uuid.UUID
    object_key: ObjectKey
    sample_rate_hz: int
    duration_s: float
    chunk_count: int
    rtf: float
    latency_s: float
    watermark_payload: str
    speaker_similarity: float | None = None
    word_error_rate: float | None = None
    dnsmos: float | None = None

    @model_validator(mode="after")
    def _key_is_the_tenants(self):
        require_own_key(self, self.object_key, "syntheses")
        return self


class SynthesisScoringRequested(Event):
    """The completed synthesis `synthesis_id` is to be scored (travels to the scoring stage, after the completion)."""

    type: Literal["synthesis.scoring_requested"] = "synthesis.scoring_requested"
    synthesis_id: uuid.UUID
    sample_rate_hz: int


class SynthesisScored(Event):
    """Scores of a completed synthesis's output, over its leading chunks up to 30 s.

    `speaker_similarity` (cosine to the target voice), `word_error_rate` (Whisper tiny.en against the
    requested text; null for other languages), `dnsmos` (overall MOS 1-5); null where the scorer is not
    installed, and `speaker_similarity` null for speech too short to judge.
    """

    type: Literal["synthesis.scored"] = "synthesis.scored"
    synthesis_id: uuid.UUID
    speaker_similarity: float | None = None
    word_error_rate: float | None = None
    dnsmos: float | None = None


class SynthesisFailed(Event):
    type: Literal["synthesis.failed"] = "synthesis.failed"
    synthesis_id: uuid.UUID
    reason: str


class WatermarkDetectionRequested(Event):
    """Is the audio at `object_key` voxflow output? The answer names the synthesis if it is."""

    type: Literal["watermark.detection_requested"] = "watermark.detection_requested"
    detection_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    object_key: ObjectKey

    @model_validator(mode="after")
    def _key_is_the_tenants(self):
        area = self.object_key.split("/", 1)[0]
        require_own_key(self, self.object_key, area if area in DETECTION_AREAS else DETECTION_AREAS[-1], per_voice=False)
        return self


class ContentCredentials(BaseModel):
    """The C2PA manifest a checked file carries, as read back.

    ``status``: valid (signed by a trusted chain, file unchanged), untrusted (intact, chain not
    trusted here), altered (the bytes changed after signing), missing (no manifest: never signed,
    stripped, or re-encoded), invalid (a broken manifest or signature).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["valid", "untrusted", "altered", "missing", "invalid"]
    failure_codes: list[str] = []
    signer: str | None = None
    synthesis_id: str | None = None
    voice_id: str | None = None
    consent_id: str | None = None


class SyntheticSpeechScore(BaseModel):
    """How likely the audio is synthetic speech by an anti-spoofing model (AASIST, trained on ASVspoof 2019).

    Its blind spot: it does not catch WORLD resynthesis of real speech, and it scores real speech through
    a codec it never saw (telephony, Vorbis) high too, so a low score never proves speech human and a high
    one alone does not prove it synthetic. The watermark and content credentials are what identify voxflow's
    own output.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    probability: float = Field(ge=0.0, le=1.0, description="0: surely real, 1: surely synthetic")
    model: str


class WatermarkDetected(Event):
    """Whether a file carries voxflow's watermark, which synthesis (or, v4, which dub) it names, (v2) its content
    credentials, (v3) its synthetic-speech score and (v5) whether the file was examined at all."""

    type: Literal["watermark.detection_result"] = "watermark.detection_result"
    # v2 added content_credentials, v3 synthetic_speech, v4 dub_id, v5 examined; older events still parse
    latest_schema_version: ClassVar[int] = 5
    schema_version: int = 5
    detection_id: uuid.UUID
    detected: bool
    examined: bool = Field(
        default=True, description="False when the file was not examined: the request was refused (a blocked tenant "
        "or voice), no object is at the key, or its audio could not be read; then `detected` is false and `reason` "
        "says why, and the answer is no evidence either way")
    confidence: float
    payload: str | None = None
    synthesis_id: uuid.UUID | None = None
    dub_id: uuid.UUID | None = None
    reason: str | None = None
    content_credentials: ContentCredentials | None = None
    synthetic_speech: SyntheticSpeechScore | None = Field(
        default=None, description="AASIST's synthetic-speech score; None when the audio could not be scored "
        "(too short, silent, or the model is not installed). Blind spot: WORLD resynthesis of real speech.")


# --- analysis --------------------------------------------------------------------------------

class AnalysisRequested(Event):
    """Analyse the recording at `object_key` (the tenant's own: uploads, syntheses or checks): its quality as
    ingest would judge it, pitch, speaking rate, advice, watermark and authenticity; given `compare_object_key`
    (another of the tenant's recordings) or `compare_voice_id` (one of the tenant's voices), whether it is the
    same speaker. The HTML report is fetched with `GET /v1/analyses/{analysis_id}/report`."""

    type: Literal["analysis.requested"] = "analysis.requested"
    analysis_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    object_key: ObjectKey = Field(min_length=1, max_length=1024)
    compare_object_key: ObjectKey | None = Field(default=None, min_length=1, max_length=1024)
    compare_voice_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")

    @model_validator(mode="after")
    def _keys_are_the_tenants(self):
        if self.compare_object_key is not None and self.compare_voice_id is not None:
            raise ValueError("compare with an object (compare_object_key) or a voice (compare_voice_id), not both")
        for key in (self.object_key, self.compare_object_key):
            if key is not None:
                area = key.split("/", 1)[0]
                require_own_key(self, key, area if area in DETECTION_AREAS else DETECTION_AREAS[-1], per_voice=False)
        return self


class WatermarkFinding(BaseModel):
    """Whether the audio carries voxflow's watermark; `payload` (hex) names the synthesis that made it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detected: bool
    confidence: float
    payload: str | None = None
    reason: str | None = Field(default=None, description="why the audio could not be checked")


class Authenticity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    synthetic_speech: SyntheticSpeechScore | None = Field(
        default=None, description="AASIST's score; None when the audio could not be scored (too short, silent). "
        "Blind spot: WORLD resynthesis of real speech.")
    content_credentials: ContentCredentials


class SpeakerVerdict(BaseModel):
    """Same speaker? `score` is `encoder`'s cosine between the two voices, `verdict` compares it with `threshold`,
    calibrated as `calibration` says."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    compared: str = Field(description="the compared recording's file name (its key's last part) or voice id")
    score: float
    verdict: Literal["same", "different"]
    threshold: float
    encoder: str
    calibration: str


class AnalysisCompleted(Event):
    """The recording's analysis; the HTML report (waveform, spectrogram, pitch, and for a comparison the voices
    among Kokoro's stock voices) is sealed at `report_key`. `speaking_rate` is syllables per second of speech,
    `f0_range_hz` the 5th-95th percentile of the voiced pitch, `dnsmos` the overall MOS (1-5), null without the
    model; `accepted`/`reasons` say how ingest would judge it as a voice sample."""

    type: Literal["analysis.completed"] = "analysis.completed"
    analysis_id: uuid.UUID
    duration_s: float
    speech_s: float
    snr_db: float
    clipping_ratio: float
    dnsmos: float | None = None
    vad: str
    f0_range_hz: list[float] | None = Field(default=None, min_length=2, max_length=2)
    f0_median_hz: float | None = None
    speaking_rate: float | None = None
    accepted: bool
    reasons: list[str] = []
    suggestions: list[str] = []
    watermark: WatermarkFinding
    authenticity: Authenticity
    comparison: SpeakerVerdict | None = None
    report_key: ObjectKey

    @model_validator(mode="after")
    def _key_is_the_tenants(self):
        require_own_key(self, self.report_key, "checks", per_voice=False)
        return self


class AnalysisFailed(Event):
    type: Literal["analysis.failed"] = "analysis.failed"
    analysis_id: uuid.UUID
    reason: str


# --- dubbing ---------------------------------------------------------------------------------

class DubRequested(Event):
    """Dub the video or audio at `media_key` in the voice, line by line from a timed script: inline
    (`script_text`) or at `script_key`, in `script_format` (srt, vtt, or json: a list of {start, end, text,
    language?} in seconds). Each line is spoken in its slot; `background` "duck" keeps the original sound
    15 dB down under the lines, "replace" leaves only the new speech. The voice's consent must cover the
    purpose "dubbing" and every language the script uses. Lip-sync is not attempted.
    """

    type: Literal["dub.requested"] = "dub.requested"
    dub_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    media_key: ObjectKey = Field(min_length=1, max_length=1024)
    script_format: Literal["srt", "vtt", "json"]
    script_text: str | None = Field(default=None, min_length=1, max_length=500_000)
    script_key: ObjectKey | None = Field(default=None, min_length=1, max_length=1024)
    background: Literal["duck", "replace"] = "duck"
    language: str = Field(default="en", min_length=2, max_length=16, description="the lines' language where a "
                          "JSON segment names none")
    engine: Literal["kokoro", "espeak", "piper"] | None = Field(default=None, description="null: the worker's setting")

    @model_validator(mode="after")
    def _one_script_in_the_tenants_keys(self):
        if (self.script_text is None) == (self.script_key is None):
            raise ValueError("give the script inline (script_text) or as an object (script_key), not both or neither")
        require_own_key(self, self.media_key, "uploads")
        require_own_key(self, self.script_key, "uploads")
        return self


class DubProgress(Event):
    """A dub under way: `segments_done` of `segment_count` lines spoken, `percent` of the whole job done."""

    type: Literal["dub.progress"] = "dub.progress"
    dub_id: uuid.UUID
    percent: float = Field(ge=0, le=100)
    segments_done: int = Field(ge=0)
    segment_count: int = Field(ge=1)


class DubPlacement(BaseModel):
    """Where line `segment_index` (0-based) was placed: speech from `start_s` to `end_s` of its slot
    `slot_start_s`-`slot_end_s`, sped up by `tempo` (1.0: as spoken)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment_index: int = Field(ge=0)
    slot_start_s: float
    slot_end_s: float
    start_s: float
    end_s: float
    tempo: float


class DubOverflow(BaseModel):
    """Line `segment_index` did not fit its slot even at the fastest tempo: `overflow_s` of speech were cut."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment_index: int = Field(ge=0)
    overflow_s: float = Field(gt=0)


class DubCompleted(Event):
    """The dubbed media is at `output_key` (`media_type` video/mp4 for a video, audio/wav for audio), watermarked
    (`watermark_payload`, hex) and carrying signed content credentials; fetch it with `GET /v1/dubs/{dub_id}/media`."""

    type: Literal["dub.completed"] = "dub.completed"
    dub_id: uuid.UUID
    output_key: ObjectKey
    media_type: Literal["video/mp4", "audio/wav"]
    duration_s: float
    placements: list[DubPlacement]
    overflows: list[DubOverflow] = []
    watermark_payload: str
    latency_s: float

    @model_validator(mode="after")
    def _key_is_the_tenants(self):
        require_own_key(self, self.output_key, "syntheses")
        return self


class DubFailed(Event):
    type: Literal["dub.failed"] = "dub.failed"
    dub_id: uuid.UUID
    reason: str


# --- operations ------------------------------------------------------------------------------

class AnomalyDetected(Event):
    """Something a stage blocked or alerts about; v2 added the kind ``cross_tenant_voice`` (a new voice that
    sounds like another tenant's, held for review), v3 ``denied_text`` (a synthesis text matched a deny
    pattern). ``rate_exceeded``'s detail names the window that tripped (per-tenant or per-voice)."""

    type: Literal["anomaly.detected"] = "anomaly.detected"
    latest_schema_version: ClassVar[int] = 3  # v3 added the kind denied_text; v1 and v2 events still parse
    schema_version: int = 3
    kind: Literal["rate_exceeded", "protected_voice", "consent_failures", "cross_tenant_voice", "denied_text"]
    severity: Literal["info", "warning", "critical"]
    detail: str
    action: Literal["alert", "blocked"]


class AuditRecorded(Event):
    """One decision a stage took; the audit stage appends it to the hash-chained log."""

    type: Literal["audit.record"] = "audit.record"
    stage: str
    action: str
    decision: Literal["accepted", "rejected", "completed", "failed", "blocked", "alerted", "revoked", "waiting"]
    subject_event_id: uuid.UUID
    detail: dict[str, Any] = {}


class AuditCheckpointed(Event):
    """A worker's Ed25519-signed statement of the audit chain's head: ``sequence`` entries, the last
    hashing to ``head_hash``, as of ``signed_at``. Keep one anywhere: `voxflow audit verify --checkpoint`
    then proves the log was not cut back or rewritten behind it.

    ``signature`` (base64) is over the canonical JSON of {"head_hash", "sequence", "signed_at"}
    (see processors/trust/audit_chain.py), by the key ``key_id`` names.
    """

    type: Literal["audit.checkpoint"] = "audit.checkpoint"
    sequence: int = Field(ge=1)
    head_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    signed_at: AwareDatetime
    key_id: str = Field(max_length=64)
    signature: str = Field(max_length=128)


# --- erasure ----------------------------------------------------------------------------------

class ErasureRequested(Event):
    """Erase a voice: its objects, samples, profiles, consents and syntheses go, its data key is destroyed
    (anything missed — a backup, a straggling chunk — can no longer be read) and the voice id is never
    usable again.

    ``requested_by`` "owner": ``owner_signature`` (base64) is the voice owner's Ed25519 signature, with the
    key of one of the voice's consents, over the canonical erasure (processors/trust/erasure.py).
    "operator": ``reason`` is required, and only a voxflow worker key may sign the message
    (`voxflow voice erase`).
    """

    type: Literal["erasure.requested"] = "erasure.requested"
    erasure_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    requested_by: Literal["owner", "operator"]
    requested_at: AwareDatetime
    owner_signature: str | None = Field(default=None, max_length=128)
    reason: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _says_who_and_why(self):
        if self.requested_by == "owner" and not self.owner_signature:
            raise ValueError("an owner's erasure needs owner_signature")
        if self.requested_by == "operator" and not (self.reason or "").strip():
            raise ValueError("an operator's erasure needs a reason")
        return self


class ErasureReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    objects_deleted: dict[str, int] = Field(description="deleted objects per area (uploads, samples, …)")
    rows_deleted: dict[str, int] = Field(description="deleted Postgres rows per table")
    data_key_destroyed: bool = Field(description="the voice's data key is gone: copies of its objects cannot be read")
    audit_records_kept: int = Field(description="audit records that name the voice; they hold ids and hashes only")


class ErasureCompleted(Event):
    type: Literal["erasure.completed"] = "erasure.completed"
    erasure_id: uuid.UUID
    requested_by: Literal["owner", "operator"]
    report: ErasureReport


class ErasureFailed(Event):
    type: Literal["erasure.failed"] = "erasure.failed"
    erasure_id: uuid.UUID
    reason: str


class DeadLettered(Event):
    """A message no stage could handle: where it was, why, and its payload (cut at 64,000 characters) with its hash.

    The original stays on its topic at `partition`/`offset`; `payload_sha256` and `payload_bytes`
    identify it there when `payload_truncated` is true.
    """

    type: Literal["dead_letter"] = "dead_letter"
    latest_schema_version: ClassVar[int] = 2  # v2 added the payload's size, hash and truncation flag
    schema_version: int = 2
    original_topic: str
    partition: int
    offset: int
    reason: str
    error: str
    payload_text: str
    payload_bytes: int | None = None
    payload_sha256: str | None = None
    payload_truncated: bool = False


# What upstream apps produce, signed by their tenant's key; every other type only a worker may sign.
UPSTREAM_EVENTS: frozenset[type[Event]] = frozenset({
    SampleUploaded, ConsentGranted, ConsentRevoked, AdaptationRequested, SynthesisRequested,
    WatermarkDetectionRequested, ErasureRequested, DubRequested, AnalysisRequested,
})
