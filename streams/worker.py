"""The Faust worker: one agent per stage topic, each a short loop over the stage processor."""

from __future__ import annotations

import asyncio
import logging
import signal

import faust
from faust.exceptions import ConsumerNotStarted

from infra.db import apply_migrations, create_pool
from infra.kafka import BrokerReachability, KafkaProducer, ensure_topics, probe_while_unreachable
from infra.data_keys import SealedDocuments, data_keys_for
from infra.encrypted_store import EncryptedObjectStore
from infra.objectstore import open_object_store
from infra.provenance_keys import load_provenance_keys
from infra.repositories import Repositories
from infra.settings import Settings
from infra.signing_keys import worker_signer
from processors.trust.text_policy import TextPolicy
from streams.authentication import ProducerAuthenticator
from streams.blocks import BlockGate
from streams.checkpoints import AuditCheckpointer
from streams.context import Limits, StageContext, VoiceModels
from streams.deadlines import RequestDeadlines, dub_failure
from streams.delivery import OutputDelivery
from streams.metrics import CountingPublisher, WorkerMetrics
from streams.offsets import reset_lost_offsets_on_assignment
from streams.periodic import run_every
from streams.processing import MessageLocation, RetryPolicy, StageMessage, StageProcessor
from streams.publisher import EventPublisher, signed_by
from streams.topics import ALL_TOPICS
from streams import transport  # noqa: F401 — its aiokafka fix (leave the group at generation 0) serves every transport
from streams.stages import BATCH_WITHIN_S, Stage, stages_named
from streams.web import WebServer, create_web_app, dependency_checks
from voxflow.broker_login import BrokerSecurity

log = logging.getLogger("voxflow.worker")


def create_faust_app(settings: Settings, processor: StageProcessor) -> faust.App:
    faust_directory = settings.data_dir / "faust"
    faust_directory.mkdir(parents=True, exist_ok=True)
    security = settings.broker_security()
    app = faust.App(
        settings.consumer_group,
        broker=f"{settings.faust_transport}://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials(security),
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        # Faust makes an empty "<id>-data" folder in the working directory unless told where.
        datadir=str(faust_directory / settings.consumer_group),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        table_standby_replicas=0,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        # Tansu holds a new group's JoinGroup for about half the session timeout: Faust's 60 s
        # default made every worker start take 31 s, 6 s makes it about 4 s.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
    )
    for stage in stages_named(settings.stages):
        _add_stage_agent(app, stage, processor, settings)
    reset_lost_offsets_on_assignment(app, settings.kafka_bootstrap, processor.publish_audit, security=security)
    return app


def faust_credentials(security: BrokerSecurity) -> faust.SASLCredentials | None:
    """The SCRAM login for Faust's consumers, producer and admin client; None (Faust's default) when anonymous."""
    if not security.authenticates:
        return None
    ssl_context = security.ssl_context() if security.protocol == "SASL_SSL" else None
    return faust.SASLCredentials(username=security.username, password=security.password,
                                 mechanism=security.mechanism, ssl_context=ssl_context)


def _add_stage_agent(app: faust.App, stage: Stage, processor: StageProcessor, settings: Settings) -> None:
    topic = app.topic(stage.topic, key_type=bytes, value_type=bytes, partitions=settings.topic_partitions)

    async def run_stage(stream):
        async for event in stream.events():
            message = event.message
            processor.metrics.lag(message.topic, message.partition, message.offset, _highwater(app, message.tp))
            await processor.process(stage, event.value, MessageLocation(message.topic, message.partition,
                                                                        message.offset), message.headers or ())

    async def run_batched_stage(stream):
        # take_events acknowledges a batch's messages only once process_batch returned
        async for batch in stream.take_events(stage.batch_size, within=BATCH_WITHIN_S):
            messages = []
            for event in batch:
                message = event.message
                processor.metrics.lag(message.topic, message.partition, message.offset, _highwater(app, message.tp))
                messages.append(StageMessage(event.value, MessageLocation(message.topic, message.partition,
                                                                          message.offset), tuple(message.headers or ())))
            await processor.process_batch(stage, messages)

    app.agent(topic, name=f"voxflow.stage.{stage.name}")(run_batched_stage if stage.batch_size > 1 else run_stage)


def _highwater(app: faust.App, tp) -> int | None:
    """The offset the partition's next message gets, as of the consumer's last fetch; None when unknown."""
    try:
        return app.consumer.highwater(tp)
    except (ConsumerNotStarted, AssertionError):  # aiokafka asserts the partition is still assigned
        return None


class VoxflowWorker:
    """Opens the pool, object store and producer, starts the web server, loads the models, then starts the agents.

    ``metrics`` holds the worker's Prometheus metrics; ``web`` is its web server (None when disabled),
    whose ``port`` is the one it listens on (the ephemeral one, for ``web_port=0``).
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.metrics = WorkerMetrics()
        self.web: WebServer | None = None
        self._pool = None
        self._producer = None
        self._reachability: BrokerReachability | None = None
        self._app: faust.App | None = None
        self._background: list[asyncio.Task] = []  # the deadline sweep, the audit checkpoints, the broker probe

    async def __aenter__(self) -> "VoxflowWorker":
        settings = self.settings
        text_policy = TextPolicy(settings.deny_patterns())  # a bad pattern stops the worker before it opens anything
        security = settings.broker_security()
        await ensure_topics(settings.kafka_bootstrap, ALL_TOPICS, partitions=settings.topic_partitions,
                            replication=settings.topic_replication, security=security)
        self._pool = await create_pool(settings.postgres_dsn, max_size=8)
        await apply_migrations(self._pool)
        self._reachability = BrokerReachability(settings.kafka_bootstrap)
        self._producer = KafkaProducer(settings.kafka_bootstrap, self._reachability, security=security)
        await self._producer.start()
        data_keys = data_keys_for(settings, self._pool)
        await data_keys.check_keyring()
        store = EncryptedObjectStore(await open_object_store(settings), data_keys)
        signer = worker_signer(settings)
        publisher = EventPublisher(self._producer, signed_by(signer))
        context = StageContext(
            repos=Repositories.over(self._pool, audit_key=settings.audit_key(), sealer=SealedDocuments(data_keys)),
            store=store,
            watermark_key=settings.watermark_key(),
            models=VoiceModels(settings.engine, settings.base_voice, settings.piper_voice, settings.kokoro_threads),
            limits=Limits(synthesis_rate_limit=settings.synthesis_rate_limit,
                          synthesis_rate_window_s=settings.synthesis_rate_window_s,
                          voice_synthesis_rate_limit=settings.voice_synthesis_rate_limit,
                          voice_synthesis_rate_window_s=settings.voice_synthesis_rate_window_s,
                          text_policy=text_policy,
                          consent_failure_limit=settings.consent_failure_limit,
                          require_spoken_consent=settings.require_spoken_consent,
                          spoken_consent_operator=settings.operator_name,
                          spoken_consent_phrase=settings.spoken_consent_phrase(),
                          spoken_consent_language=settings.spoken_consent_language,
                          refinement_steps=settings.refinement_steps),
            progress=CountingPublisher(publisher, self.metrics),
            provenance=load_provenance_keys(settings),
            data_keys=data_keys,
        )
        if not settings.require_spoken_consent:
            log.warning("VOXFLOW_REQUIRE_SPOKEN_CONSENT is off: new voices are built without a recording of their "
                        "owner speaking the consent phrase; for development only")
        if settings.web_enabled:
            await self._start_web(store, OutputDelivery(context.repos.syntheses, context.repos.tenant_keys, store,
                                                          dubs=context.repos.dubs, erased=context.repos.erasures))
        log.info("loading speaker encoder and synthesis engine")
        await asyncio.to_thread(context.models.warm_up)
        authenticator = ProducerAuthenticator(context.repos.tenant_keys, signer.public_key)
        processor = StageProcessor(context, publisher, authenticator,
                                   policy=RetryPolicy(transient_retry_s=settings.transient_retry_s),
                                   metrics=self.metrics, blocks=BlockGate(context.repos.blocks))
        self._app = create_faust_app(settings, processor)
        self._reachability.install()
        await self._app.start()
        self._background.append(asyncio.create_task(probe_while_unreachable(self._producer)))
        running = [stage.name for stage in stages_named(settings.stages)]
        if "synthesis" in running:
            deadlines = RequestDeadlines(context.repos.syntheses,
                                         lambda outcomes: processor.publish_outcomes("synthesis", outcomes),
                                         settings.request_deadline_s)
            self._background.append(asyncio.create_task(
                run_every(settings.deadline_sweep_s, deadlines.sweep, "deadline sweep")))
        if "dubbing" in running:
            dub_deadlines = RequestDeadlines(context.repos.dubs,
                                             lambda outcomes: processor.publish_outcomes("dubbing", outcomes),
                                             settings.request_deadline_s, failure_of=dub_failure)
            self._background.append(asyncio.create_task(
                run_every(settings.deadline_sweep_s, dub_deadlines.sweep, "dub deadline sweep")))
        if "audit" in running:
            checkpointer = AuditCheckpointer(context.repos.checkpoints, signer.private_key,
                                             lambda outcomes: processor.publish_outcomes("audit", outcomes))
            self._background.append(asyncio.create_task(
                run_every(settings.audit_checkpoint_interval_s, checkpointer.checkpoint, "audit checkpoint")))
        log.info("worker started: stages %s on %s",
                 ", ".join(running), settings.kafka_bootstrap)
        return self

    @property
    def web_port(self) -> int | None:
        """The port /metrics and /health are served on, once started; None without a web server."""
        return self.web.port if self.web is not None else None

    async def _start_web(self, store, delivery: OutputDelivery) -> None:
        checks = dependency_checks(producer=self._producer, pool=self._pool, store=store)
        server = WebServer(create_web_app(self.metrics, checks, delivery=delivery), self.settings.web_host,
                           self.settings.web_port)
        try:
            await server.start()
        except OSError as error:  # declared fate: the worker runs on without /metrics and /health, said loudly
            log.error("web server not started on %s:%d (%s); no /metrics or /health from this worker",
                      self.settings.web_host, self.settings.web_port, error)
            return
        self.web = server
        log.info("serving /metrics, /health and output delivery on %s", server.url)

    async def __aexit__(self, *exc_info) -> None:
        for task in self._background:
            task.cancel()
        if self.web is not None:
            await self.web.stop()
        if self._app is not None:
            await self._app.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._reachability is not None:
            self._reachability.uninstall()
        if self._pool is not None:
            await self._pool.close()
        log.info("worker stopped")


def run_worker_forever(settings: Settings) -> None:
    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with VoxflowWorker(settings):
            await stop.wait()

    asyncio.run(main())
