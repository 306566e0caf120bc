"""The Faust worker: one agent per stage topic, each a short loop over the stage processor."""

from __future__ import annotations

import asyncio
import logging
import signal

import faust

from infra.db import apply_migrations, create_pool
from infra.kafka import KafkaProducer, ensure_topics
from infra.objectstore import open_object_store
from infra.repositories import Repositories
from infra.settings import Settings
from streams.context import Limits, StageContext, VoiceModels
from streams.processing import MessageLocation, StageProcessor
from streams.publisher import EventPublisher
from streams.topics import ALL_TOPICS
from streams.stages import Stage, stages_named

log = logging.getLogger("voxflow.worker")


def create_faust_app(settings: Settings, processor: StageProcessor) -> faust.App:
    app = faust.App(
        settings.consumer_group,
        broker=f"{settings.faust_transport}://{settings.kafka_bootstrap}",
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
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
    return app


def _add_stage_agent(app: faust.App, stage: Stage, processor: StageProcessor, settings: Settings) -> None:
    topic = app.topic(stage.topic, key_type=bytes, value_type=bytes, partitions=settings.topic_partitions)

    async def run_stage(stream):
        async for event in stream.events():
            message = event.message
            await processor.process(stage, event.value, MessageLocation(message.topic, message.partition,
                                                                        message.offset))

    app.agent(topic, name=f"voxflow.stage.{stage.name}")(run_stage)


class VoxflowWorker:
    """Opens the pool, object store and producer, loads the models, then starts the agents."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._pool = None
        self._producer = None
        self._app: faust.App | None = None

    async def __aenter__(self) -> "VoxflowWorker":
        settings = self.settings
        await ensure_topics(settings.kafka_bootstrap, ALL_TOPICS, partitions=settings.topic_partitions,
                            replication=settings.topic_replication)
        self._pool = await create_pool(settings.postgres_dsn, max_size=8)
        await apply_migrations(self._pool)
        self._producer = KafkaProducer(settings.kafka_bootstrap)
        await self._producer.start()
        context = StageContext(
            repos=Repositories.over(self._pool, audit_key=settings.audit_key()),
            store=await open_object_store(settings),
            watermark_key=settings.watermark_key(),
            models=VoiceModels(settings.engine, settings.base_voice, settings.piper_voice, settings.kokoro_threads),
            limits=Limits(synthesis_rate_limit=settings.synthesis_rate_limit,
                          synthesis_rate_window_s=settings.synthesis_rate_window_s,
                          consent_failure_limit=settings.consent_failure_limit,
                          require_spoken_consent=settings.require_spoken_consent,
                          refinement_steps=settings.refinement_steps),
            progress=EventPublisher(self._producer),
        )
        log.info("loading speaker encoder and synthesis engine")
        await asyncio.to_thread(context.models.warm_up)
        processor = StageProcessor(context, EventPublisher(self._producer), max_attempts=settings.max_handler_attempts)
        self._app = create_faust_app(settings, processor)
        await self._app.start()
        log.info("worker started: stages %s on %s",
                 ", ".join(stage.name for stage in stages_named(settings.stages)), settings.kafka_bootstrap)
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self._app is not None:
            await self._app.stop()
        if self._producer is not None:
            await self._producer.stop()
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
