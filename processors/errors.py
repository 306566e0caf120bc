"""Named errors raised by the pure processors."""


class ProcessorError(Exception):
    """Base of every error a processor raises on bad input or a missing tool."""


class InvalidAudioError(ProcessorError):
    """An audio array or sample rate is unusable (wrong shape, not finite, rate not positive)."""


class AudioDecodeError(ProcessorError):
    """Bytes could not be decoded as audio in any supported format."""


class EmptyAudioError(AudioDecodeError):
    """No bytes, or a container holding no samples."""


class AudioTooLongError(AudioDecodeError):
    """The audio is longer than the decoder will hold in memory."""


class ExternalToolMissingError(ProcessorError):
    """A required program (ffmpeg, espeak-ng) is not on PATH."""


class InvalidEmbeddingError(ProcessorError):
    """A speaker embedding has the wrong shape or no direction (all zeros, not finite)."""


class SpeechTooShortError(ProcessorError):
    """Too little speech to measure what was asked (speaker embedding, voice profile)."""


class NoVoicedSpeechError(ProcessorError):
    """No voiced frames were found: noise, silence or whisper instead of speech."""


class InconsistentSpeakerError(ProcessorError):
    """The samples of a voice profile do not agree on one speaker."""


class ProfileFormatError(ProcessorError):
    """A serialised voice profile is malformed or of an unsupported version."""


class SynthesisError(ProcessorError):
    """Text-to-speech or voice conversion failed."""


class UnsupportedLanguageError(SynthesisError):
    """The text-to-speech engine has no voice for the requested language."""


class InvalidTextError(SynthesisError):
    """The text to speak is empty or too long."""


class InvalidControlsError(SynthesisError):
    """A synthesis control (speed, pitch, energy, emotion) is outside its allowed range."""


class ConsentSignatureError(ProcessorError):
    """A consent or revocation signature is malformed, made with another key, or over other content."""


class EmptyTextError(InvalidTextError):
    """Nothing speakable is left once markup, emoji and symbols are removed."""


class TextTooLongError(InvalidTextError):
    """The text is longer than one synthesis request may be."""


class InvalidMorphError(ProcessorError):
    """A voice morph was asked with too few or too many voices, or weights that are not a distribution."""


class InvalidVoiceTransformError(ProcessorError):
    """An age or gender shift is outside its allowed range."""


class ScorerUnavailableError(ProcessorError):
    """An optional scoring model (faster-whisper, DNSMOS) is not installed."""


class ReferenceRejectedError(ProcessorError):
    """A reference recording failed the ingest quality gate; the message says why and what to do."""


class InvalidWatermarkInputError(ProcessorError):
    """Audio, sample rate, key or payload unusable for watermarking (empty, not finite, rate under 16 kHz, silent)."""


class WatermarkAudioTooShortError(InvalidWatermarkInputError):
    """The audio is too short to carry the watermark payload."""


class InvalidConsentError(ProcessorError):
    """A consent document or scope question is malformed (naive datetime, no purposes, max_uses below 1)."""


class ConsentKeyError(ConsentSignatureError):
    """Owner key material is malformed: wrong length, not base64, or not an Ed25519 key."""


class AuditChainError(ProcessorError):
    """An audit record cannot be hashed (not JSON-serialisable, bad hash or sequence)."""


class InvalidAnomalyCheckError(ProcessorError):
    """An anomaly check was asked with a window or limit that means nothing (window not positive, limit negative)."""


class SpeechDetectorUnavailableError(ProcessorError):
    """The neural voice-activity detector (silero-vad) is not installed."""


class SpeakerModelError(ProcessorError):
    """The speaker encoder's weights are missing or not the checkpoint it expects."""


class VoiceFittingError(ProcessorError):
    """A voice could not be fitted to the reference (too little speech, no usable start)."""


class FittingDivergedError(VoiceFittingError):
    """The fit's objective or parameters became non-finite; the previous voice stays."""


class EventSignatureError(ProcessorError):
    """An event message is unsigned, signed by a key nobody registered, or signed over other bytes."""


class ProvenanceKeyError(ProcessorError):
    """A C2PA certificate chain or private key is unusable: not PEM, another key's, or an unsupported algorithm."""


class ProvenanceSigningError(ProcessorError):
    """A file could not be signed: its format cannot carry a manifest, or its bytes are not that format."""
