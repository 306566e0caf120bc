"""The Postgres repositories and the in-memory fakes offer every method of the ports handlers are written
against, with the same keyword arguments: a handler test on the fakes exercises what production calls."""

from __future__ import annotations

import inspect

import pytest

from infra.repositories import (ConsentRepository, DubRepository, ProfileRepository, SampleRepository,
                                SynthesisRepository, VoiceRepository)
from streams.ports import Consents, Dubs, Profiles, Samples, Syntheses, Voices
from tests.unit.fakes import FakeConsents, FakeDubs, FakeProfiles, FakeSamples, FakeSyntheses, FakeVoices


def methods(protocol) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(protocol).items()
            if inspect.iscoroutinefunction(member)}


def keywords(signature: inspect.Signature) -> dict[str, bool]:
    """Each keyword argument's name and whether it must be given."""
    return {name: parameter.default is inspect.Parameter.empty for name, parameter in signature.parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY}


@pytest.mark.parametrize("protocol, implementation", [
    (Voices, VoiceRepository), (Voices, FakeVoices), (Consents, ConsentRepository), (Consents, FakeConsents),
    (Profiles, ProfileRepository), (Profiles, FakeProfiles), (Samples, SampleRepository), (Samples, FakeSamples),
    (Syntheses, SynthesisRepository), (Syntheses, FakeSyntheses), (Dubs, DubRepository), (Dubs, FakeDubs),
], ids=lambda value: value.__name__)
def test_an_implementation_has_every_method_of_its_port_with_the_same_arguments(protocol, implementation):
    for name, signature in methods(protocol).items():
        member = getattr(implementation, name, None)
        assert inspect.iscoroutinefunction(member), f"{implementation.__name__} lacks async {name}"
        assert keywords(inspect.signature(member)) == keywords(signature), f"{implementation.__name__}.{name}"
