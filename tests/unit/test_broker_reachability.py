"""While the broker is away, aiokafka's line per connection attempt becomes one line, and one when it is back."""

import asyncio
import logging

import pytest

from infra.kafka import BrokerReachability, probe_while_unreachable

BOOTSTRAP = "127.0.0.1:9092"
# What aiokafka logged during the 20 s store outage of tests/faults/test_store_outage.py, a few times a second.
OUTAGE_LINES = [
    ("aiokafka.consumer.fetcher", logging.ERROR,
     "Failed fetch messages from 111: KafkaConnectionError: Connection at 127.0.0.1:9092 closed"),
    ("aiokafka.producer.sender", logging.WARNING,
     "Got error produce response: KafkaConnectionError: Connection at 127.0.0.1:9092 closed"),
    ("aiokafka", logging.ERROR, "Unable to update metadata from [111]"),
    ("aiokafka.cluster", logging.ERROR,
     "Error fetching metadata for topic voxflow.results: <class 'aiokafka.errors.UnknownError'>"),
    ("aiokafka.consumer.group_coordinator", logging.WARNING,
     "Marking the coordinator dead (node 111)for group voxflow."),
]


class Clock:
    def __init__(self):
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def reachability():
    watched = BrokerReachability(BOOTSTRAP, clock=Clock())
    watched.install()
    yield watched
    watched.uninstall()


def outage(seconds: int) -> None:
    for _ in range(seconds * 10):
        for name, level, message in OUTAGE_LINES:
            logging.getLogger(name).log(level, message)


def lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


def test_an_outage_is_said_once_when_it_starts_and_once_when_it_ends(reachability, caplog):
    caplog.set_level(logging.INFO)

    outage(seconds=20)
    reachability._clock.now_s += 20
    reachability.regained()

    said = lines(caplog)
    assert len(said) == 2
    assert said[0].startswith(f"broker at {BOOTSTRAP} unreachable since ")
    assert said[1] == f"broker at {BOOTSTRAP} back after 20 s (1000 client errors quieted meanwhile)"


def test_each_outage_gets_its_own_pair_of_lines(reachability, caplog):
    caplog.set_level(logging.INFO)

    for _ in range(3):
        outage(seconds=1)
        reachability.regained()

    assert len(lines(caplog)) == 6


def test_other_aiokafka_warnings_still_show_while_the_broker_answers(reachability, caplog):
    caplog.set_level(logging.INFO)

    logging.getLogger("aiokafka.consumer.fetcher").warning("Not authorized to read from topic voxflow.audit.")
    reachability.regained()

    assert lines(caplog) == ["Not authorized to read from topic voxflow.audit."]
    assert reachability.reachable


class MetadataAnswers:
    """A producer whose metadata requests are answered; the first ``with_topic_errors`` of them with errors."""

    def __init__(self, reachability: BrokerReachability, with_topic_errors: int):
        self.reachability = reachability
        self.with_topic_errors = with_topic_errors
        self.checks = 0

    async def check(self) -> None:
        self.checks += 1
        if self.checks <= self.with_topic_errors:
            logging.getLogger("aiokafka.cluster").error(
                "Error fetching metadata for topic voxflow.results: <class 'aiokafka.errors.UnknownError'>")


async def test_the_broker_counts_as_back_only_once_its_metadata_comes_without_errors(reachability, caplog):
    caplog.set_level(logging.INFO)
    outage(seconds=1)
    producer = MetadataAnswers(reachability, with_topic_errors=3)

    probing = asyncio.create_task(probe_while_unreachable(producer, interval_s=0.001))
    while not reachability.reachable:
        await asyncio.sleep(0.001)
    probing.cancel()

    assert producer.checks == 4
    assert [line.split(" ")[3] for line in lines(caplog)] == ["unreachable", "back"]
