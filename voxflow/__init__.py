"""The voxflow client: what an upstream app needs to drive the pipeline, without the worker.

    from voxflow import Client, ClientConfig

    with Client(ClientConfig.from_environment()) as client:
        spoken = client.clone_and_speak("narrator-1", samples, "Hello.", owner_key=key, owner_id="ada",
                                        statement_text="I consent.")
        audio = client.download(spoken.synthesis.synthesis_id)

It imports the event models (``schemas``) and the pure signing code (``processors.trust``), never the
worker's ``streams`` or ``infra``.
"""

from schemas.envelope import Event
from schemas.events import (AdaptationFailed, AdaptationProgress, AdaptationRequested, ConsentGranted,
                            ConsentRejected, ConsentRevocationApplied, ConsentRevoked, ConsentVerified, DeadLettered,
                            DubCompleted, DubFailed, DubProgress, DubRequested,
                            ErasureCompleted, ErasureFailed, ErasureRequested, SampleAccepted, SampleRejected,
                            SampleUploaded, SynthesisChunkReady, SynthesisCompleted, SynthesisControls,
                            SynthesisFailed, SynthesisRequested, SynthesisScored, VoiceReady)
from voxflow.client import AsyncClient, ClonedSpeech
from voxflow.config import ClientConfig, read_key_file
from voxflow.errors import (BrokerLoginRefused, BrokerUnreachable, ClientConfigError, DeliveryFailed,
                            DeliveryForbidden, DeliveryUnauthorized, RequestDeadLettered, RequestFailed, ResultTimeout,
                            SynthesisNotAvailable, UploadFailed, VoiceErased, VoxflowClientError)
from voxflow.json_schemas import schema
from voxflow.sync import Client

__all__ = [
    "AsyncClient", "Client", "ClientConfig", "ClonedSpeech", "read_key_file", "schema",
    "VoxflowClientError", "ClientConfigError", "BrokerUnreachable", "BrokerLoginRefused", "UploadFailed",
    "ResultTimeout", "RequestDeadLettered", "RequestFailed", "DeliveryFailed", "DeliveryUnauthorized",
    "DeliveryForbidden", "SynthesisNotAvailable", "VoiceErased",
    "Event", "SampleUploaded", "SampleAccepted", "SampleRejected", "ConsentGranted", "ConsentVerified",
    "ConsentRejected", "ConsentRevoked", "ConsentRevocationApplied", "AdaptationRequested", "AdaptationProgress",
    "VoiceReady", "AdaptationFailed", "SynthesisRequested", "SynthesisControls", "SynthesisChunkReady",
    "SynthesisCompleted", "SynthesisScored", "SynthesisFailed", "ErasureRequested", "ErasureCompleted", "ErasureFailed", "DeadLettered",
    "DubRequested", "DubProgress", "DubCompleted", "DubFailed",
]
