class StreamError(Exception):
    """Base of voxflow's stream-processing errors."""


class WaitingForPrerequisites(StreamError):
    """The event cannot be handled yet (e.g. consent not verified); it is re-sent when that changes."""


class Unauthenticated(StreamError):
    """An event is unsigned, signed by a key nobody registered for its tenant, or of a type only workers send."""


class TenantKeyTaken(StreamError):
    """A producer key is already registered to another tenant."""


class TopicMissing(StreamError):
    """A topic the command reads does not exist on the broker."""


class SynthesisRefused(StreamError):
    """A synthesis request is not allowed (consent, voice) or cannot be spoken."""


class ProtectedVoiceRequested(SynthesisRefused):
    """A request names a voice that is protected from cloning."""
