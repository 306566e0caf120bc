"""What the client raises: one base class, one named error per way a call can go wrong."""

from __future__ import annotations


class VoxflowClientError(Exception):
    """Base of every error the voxflow client raises."""


class ClientConfigError(VoxflowClientError):
    """The configuration cannot work: a missing or malformed key, an unset value."""


class BrokerUnreachable(VoxflowClientError):
    """Kafka did not accept the connection or the event in time."""


class BrokerLoginRefused(BrokerUnreachable):
    """Kafka refused the client's SASL login: unknown user, wrong password, or a mechanism it does not offer."""


class UploadFailed(VoxflowClientError):
    """The object store did not take the audio (unreachable, wrong credentials, no such bucket)."""


class ResultTimeout(VoxflowClientError, TimeoutError):
    """No ending event arrived in time; ``waited_for`` says which types of which request."""

    def __init__(self, message: str, *, waited_for: str):
        super().__init__(message)
        self.waited_for = waited_for


class RequestDeadLettered(VoxflowClientError):
    """The pipeline refused the request unread (unsigned, unknown key, malformed): ``reason`` and ``error`` say why."""

    def __init__(self, message: str, *, reason: str, error: str):
        super().__init__(message)
        self.reason = reason
        self.error = error


class RequestFailed(VoxflowClientError):
    """A step of a multi-step call ended in a rejection or failure; ``event`` is that ending."""

    def __init__(self, message: str, *, event):
        super().__init__(message)
        self.event = event


class DeliveryFailed(VoxflowClientError):
    """The delivery endpoint did not hand over the audio; ``status`` is its HTTP status (None: unreachable)."""

    def __init__(self, message: str, *, status: int | None):
        super().__init__(message)
        self.status = status


class DeliveryUnauthorized(DeliveryFailed):
    """401: the request's signature, timestamp or tenant key was not accepted."""


class DeliveryForbidden(DeliveryFailed):
    """403: the synthesis belongs to another tenant."""


class SynthesisNotAvailable(DeliveryFailed):
    """404: no such synthesis, or it has not completed."""


class VoiceErased(DeliveryFailed):
    """410: the synthesis's voice was erased, and its outputs with it."""
