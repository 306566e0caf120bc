"""Named errors raised by voxflow's infrastructure code (clients, stores, the embedded stack)."""


class InfraError(Exception):
    """Base for every voxflow infrastructure error."""


class DatabaseUnavailable(InfraError):
    """Postgres cannot be reached."""


class BrokerUnavailable(InfraError):
    """The Kafka broker cannot be reached or refused a send; worth retrying."""


class EventRefusedByBroker(InfraError):
    """The broker will never accept this message (for example: over its size limit)."""


class BrokerAuthenticationFailed(InfraError):
    """The broker refused the SASL login: unknown user, wrong password, or a mechanism it does not offer.

    Not worth retrying with the same credentials.
    """


class BrokerUserRefused(InfraError):
    """The broker did not create or change a SCRAM user."""


class MigrationError(InfraError):
    """A schema migration failed to apply."""


class ObjectStoreError(InfraError):
    """The object store could not complete a request."""


class ObjectNotFound(ObjectStoreError):
    """No object exists at the key."""


class InvalidObjectKey(ObjectStoreError):
    """The key is empty, absolute or climbs out of the store."""


class ObjectStoreUnavailable(ObjectStoreError):
    """The object store did not answer, failed, or refused access for a while; worth retrying."""


class StackError(InfraError):
    """The embedded broker/Postgres stack could not be managed."""


class StackConfigError(StackError):
    """The embedded stack was configured inconsistently."""


class BinaryNotFoundError(StackError):
    """A server binary the embedded stack needs is not installed."""


class PortInUseError(StackError):
    """A port the embedded stack wants to listen on is taken by another process."""


class PortMismatchError(StackError):
    """A stack service is already running, but on a different port than requested."""


class ServiceStartError(StackError):
    """A stack service failed to start or exited during startup."""


class ServiceNotReadyError(StackError):
    """A stack service started but did not become ready in time."""


class ServiceStopError(StackError):
    """A stack service could not be stopped."""


class AssetUnavailable(InfraError):
    """A packaged model or voice asset is not installed or could not be unpacked."""


class ProvenanceKeysError(InfraError):
    """The configured C2PA chain, key or trust anchors cannot be read, or only one of chain and key is set."""


class DataKeyDestroyed(InfraError):
    """The voice's data key was destroyed (the voice was erased): its data can never be read or written again."""


class MasterKeyMissing(InfraError):
    """A data key is wrapped by a master key this machine does not have."""
