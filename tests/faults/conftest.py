"""A private embedded stack per fault module that needs one: what breaks there cannot stall the shared stack."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import started_stack, with_registered_tenants
from tests.journeys import TENANT


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory):
    with started_stack(tmp_path_factory.mktemp("private-stack")) as stack:
        yield stack


@pytest.fixture(scope="module")
def private_settings(private_stack, stack_settings):
    """The shared test settings pointed at the private stack, with no rate limit in the way."""
    settings = stack_settings.model_copy(update={
        "kafka_bootstrap": private_stack.kafka_bootstrap, "postgres_dsn": private_stack.postgres_dsn,
        "s3_endpoint": private_stack.s3_endpoint, "synthesis_rate_limit": 100_000,
        "consumer_group": f"voxflow-private-{uuid.uuid4().hex[:6]}",
    })
    return with_registered_tenants(settings, TENANT)
