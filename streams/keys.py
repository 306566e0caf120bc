"""Operator work on the keys at rest: rotating the master key, and what each master key still wraps."""

from __future__ import annotations

from dataclasses import dataclass

from infra.data_keys import data_keys_for
from infra.settings import Settings
from streams.session import database


@dataclass(frozen=True)
class Rotation:
    master_key_id: str
    rewrapped: int
    data_keys_by_master_key: dict[str, int]


async def rotate_master_key(settings: Settings, *, new_key: bool = True) -> Rotation:
    """Make a new master key active (unless ``new_key`` is False: finish an interrupted rotation) and
    rewrap every data key under it; sealed objects and rows are not touched."""
    async with database(settings) as pool:
        data_keys = data_keys_for(settings, pool)
        active = data_keys.keyring.rotate() if new_key else data_keys.keyring.active()[0]
        rewrapped = await data_keys.rewrap_all()
        return Rotation(active, rewrapped, await data_keys.repository.count_by_master_key())


async def key_status(settings: Settings) -> dict:
    async with database(settings) as pool:
        data_keys = data_keys_for(settings, pool)
        return {"active_master_key": data_keys.keyring.active()[0],
                "master_keys_on_this_machine": data_keys.keyring.key_ids(),
                "data_keys_by_master_key": await data_keys.repository.count_by_master_key()}
