"""Voices in Kokoro's style space: stock packs, blends of them, and the offset a fit adds.

A Kokoro voice is a style table, float32 ``[510, 256]`` (one row per token count). Every voice
voxflow makes is described by a :class:`KokoroVoice` — weights over the 54 stock packs, an offset
added to every row (what the refined tier fits), a gender shift along the direction from the male
to the female packs, and an age shift — so a profile stores a few hundred numbers, never a table.
The packs carry no usable age labels (the three "santa" voices, the only old ones, lie in a
direction that raises pitch), so the engine applies the age shift to the speech itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from processors.constants import (
    INSTANT_VOICE_BLEND_STEPS,
    INSTANT_VOICE_CANDIDATES,
    INSTANT_VOICE_MIN_WEIGHT,
    KOKORO_GENDER_SHIFT_SCALE,
    KOKORO_STYLE_ROWS,
    KOKORO_STYLE_SIZE,
    MAX_MORPH_VOICES,
    MIN_MORPH_VOICES,
    MORPH_WEIGHT_TOLERANCE,
)
from processors.errors import InvalidEmbeddingError, InvalidMorphError, InvalidVoiceTransformError, ProfileFormatError

FEMALE_PACK_MARK, MALE_PACK_MARK = "f", "m"  # a pack's second letter: af_heart, am_adam, …


@dataclass(frozen=True)
class KokoroVoice:
    """A voice as stock-pack weights (summing to 1), a style offset ``[256]``, and gender/age shifts in -1..1."""

    pack_weights: Mapping[str, float]
    style_offset: tuple[float, ...] = field(default=(0.0,) * KOKORO_STYLE_SIZE)
    gender_shift: float = 0.0
    age_shift: float = 0.0

    def to_dict(self) -> dict:
        return {
            "pack_weights": {name: float(weight) for name, weight in self.pack_weights.items()},
            "style_offset": [float(value) for value in self.style_offset],
            "gender_shift": float(self.gender_shift),
            "age_shift": float(self.age_shift),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> KokoroVoice:
        try:
            voice = cls(
                pack_weights={str(name): float(weight) for name, weight in dict(data["pack_weights"]).items()},
                style_offset=tuple(float(value) for value in data["style_offset"]),
                gender_shift=float(data.get("gender_shift", 0.0)),
                age_shift=float(data.get("age_shift", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ProfileFormatError(f"malformed Kokoro voice: {error}") from error
        if len(voice.style_offset) != KOKORO_STYLE_SIZE or not voice.pack_weights:
            raise ProfileFormatError("a Kokoro voice needs pack weights and a 256-number style offset")
        return voice

    def with_offset(self, offset: np.ndarray) -> KokoroVoice:
        return replace(self, style_offset=tuple(float(value) for value in offset))

    def shifted(self, gender: float = 0.0, age: float = 0.0) -> KokoroVoice:
        """The same voice more feminine (``gender`` > 0) or masculine, older (``age`` > 0) or younger."""
        for name, value in (("gender", gender), ("age", age)):
            if not np.isfinite(value) or not -1.0 <= value <= 1.0:
                raise InvalidVoiceTransformError(f"{name} shift must be a number within -1..1, got {value!r}")
        return replace(
            self,
            gender_shift=float(np.clip(self.gender_shift + gender, -1.0, 1.0)),
            age_shift=float(np.clip(self.age_shift + age, -1.0, 1.0)),
        )


class StockVoices:
    """The stock packs (``{name: [510, 256]}``) and the gender direction measured on them.

    ``embeddings`` (``[P, 256]``, same order as ``names``) are speaker embeddings of each pack's
    speech, used to pick an instant voice; they are optional for plain synthesis.
    """

    def __init__(self, packs: Mapping[str, np.ndarray], embeddings: np.ndarray | None = None) -> None:
        if not packs:
            raise ProfileFormatError("no Kokoro voice packs")
        self.names = tuple(sorted(packs))
        self.tables = np.stack([np.asarray(packs[name], dtype=np.float32) for name in self.names])
        self.embeddings = embeddings
        self.gender_direction = _direction(self, _has_mark(self.names, FEMALE_PACK_MARK), _has_mark(self.names, MALE_PACK_MARK))

    def with_embeddings(self, embeddings: np.ndarray) -> StockVoices:
        if embeddings.shape != (len(self.names), embeddings.shape[-1]):
            raise InvalidEmbeddingError(f"need one embedding per pack ({len(self.names)}), got {embeddings.shape}")
        return StockVoices(dict(zip(self.names, self.tables)), embeddings)

    def table(self, name: str) -> np.ndarray:
        return self.tables[self.names.index(name)]

    def style_table(self, voice: KokoroVoice) -> np.ndarray:
        """The voice's ``[510, 256]`` style table: weighted packs + offset + gender shift."""
        unknown = sorted(set(voice.pack_weights) - set(self.names))
        if unknown:
            raise ProfileFormatError(f"the voice uses unknown stock packs: {', '.join(unknown)}")
        weights = np.array([voice.pack_weights.get(name, 0.0) for name in self.names], dtype=np.float32)
        blend = np.tensordot(weights / weights.sum(), self.tables, axes=1)
        shift = np.asarray(voice.style_offset, dtype=np.float32) + KOKORO_GENDER_SHIFT_SCALE * voice.gender_shift * self.gender_direction
        return (blend + shift).astype(np.float32)

    def nearest(self, embedding: np.ndarray, count: int = 1) -> list[tuple[str, float]]:
        """The ``count`` packs whose speech is most like ``embedding``, with their cosine similarity."""
        similarities = self._similarities(embedding)
        order = np.argsort(-similarities)[:count]
        return [(self.names[index], float(similarities[index])) for index in order]

    def _similarities(self, embedding: np.ndarray) -> np.ndarray:
        if self.embeddings is None:
            raise InvalidEmbeddingError("the stock packs have not been embedded")
        target = _unit(np.asarray(embedding, dtype=np.float64))
        return _unit_rows(self.embeddings.astype(np.float64)) @ target


def read_pack(data: bytes) -> np.ndarray:
    """One stock pack's ``.bin`` bytes as float32 ``[510, 256]``."""
    values = np.frombuffer(data, dtype="<f4")
    if values.size != KOKORO_STYLE_ROWS * KOKORO_STYLE_SIZE:
        raise ProfileFormatError(f"a Kokoro voice pack holds {KOKORO_STYLE_ROWS}x{KOKORO_STYLE_SIZE} floats, got {values.size}")
    return values.reshape(KOKORO_STYLE_ROWS, KOKORO_STYLE_SIZE).astype(np.float32)


def instant_voice(stock: StockVoices, embedding: np.ndarray, candidates: int = INSTANT_VOICE_CANDIDATES) -> KokoroVoice:
    """The convex blend of the nearest packs whose blended embedding is most like ``embedding``.

    A blend's speech is placed where the renormalised weighted mean of its packs' embeddings
    lies, so the weights are fitted on embeddings alone (projected gradient ascent on the
    simplex), in milliseconds; no speech is rendered.
    """
    nearest = stock.nearest(embedding, candidates)
    names = [name for name, _ in nearest]
    pack_embeddings = _unit_rows(stock.embeddings[[stock.names.index(name) for name in names]].astype(np.float64))
    weights = _fit_simplex_weights(pack_embeddings, _unit(np.asarray(embedding, dtype=np.float64)))
    kept = weights >= INSTANT_VOICE_MIN_WEIGHT
    shares = weights[kept] / weights[kept].sum()
    return KokoroVoice(pack_weights={str(name): float(share) for name, share in zip(np.array(names)[kept], shares)})


def mix_voices(voices: Sequence[KokoroVoice], weights: Sequence[float]) -> KokoroVoice:
    """A voice between 2-4 Kokoro voices: their pack weights, offsets and shifts mixed by ``weights``."""
    mixing = _checked_mixing(voices, weights)
    pack_weights: dict[str, float] = {}
    for voice, share in zip(voices, mixing):
        for name, weight in voice.pack_weights.items():
            pack_weights[name] = pack_weights.get(name, 0.0) + share * weight
    offsets = np.asarray([voice.style_offset for voice in voices], dtype=np.float64)
    return KokoroVoice(
        pack_weights=pack_weights,
        style_offset=tuple(float(value) for value in mixing @ offsets),
        gender_shift=float(mixing @ [voice.gender_shift for voice in voices]),
        age_shift=float(mixing @ [voice.age_shift for voice in voices]),
    )


def _fit_simplex_weights(pack_embeddings: np.ndarray, target: np.ndarray) -> np.ndarray:
    weights = np.full(len(pack_embeddings), 1.0 / len(pack_embeddings))
    step = 0.5
    for _ in range(INSTANT_VOICE_BLEND_STEPS):
        mean = weights @ pack_embeddings
        norm = np.linalg.norm(mean)
        cosine = mean @ target / norm
        gradient = pack_embeddings @ (target / norm - cosine * mean / norm**2)
        weights = _project_to_simplex(weights + step * gradient)
    return weights


def _project_to_simplex(values: np.ndarray) -> np.ndarray:
    """Euclidean projection onto {w >= 0, sum w = 1} (sort-based, Duchi et al. 2008)."""
    ordered = np.sort(values)[::-1]
    cumulative = np.cumsum(ordered) - 1.0
    index = np.nonzero(ordered - cumulative / np.arange(1, values.size + 1) > 0)[0][-1]
    return np.maximum(values - cumulative[index] / (index + 1), 0.0)


def _checked_mixing(voices: Sequence[KokoroVoice], weights: Sequence[float]) -> np.ndarray:
    if not MIN_MORPH_VOICES <= len(voices) <= MAX_MORPH_VOICES or len(weights) != len(voices):
        raise InvalidMorphError(f"a blend takes {MIN_MORPH_VOICES}-{MAX_MORPH_VOICES} voices with one weight each")
    mixing = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(mixing)) or np.any(mixing < 0) or abs(mixing.sum() - 1.0) > MORPH_WEIGHT_TOLERANCE:
        raise InvalidMorphError(f"blend weights must be non-negative and sum to 1, got {list(weights)}")
    return mixing


def _has_mark(names: Sequence[str], mark: str) -> np.ndarray:
    return np.array([len(name) > 1 and name[1] == mark for name in names])


def _direction(stock: StockVoices, towards: np.ndarray, away_from: np.ndarray) -> np.ndarray:
    """Mean style (over rows) of one group of packs minus another's, float32 ``[256]``; zero if a group is empty."""
    if not towards.any() or not away_from.any():
        return np.zeros(KOKORO_STYLE_SIZE, dtype=np.float32)
    mean_styles = stock.tables.mean(axis=1)
    return (mean_styles[towards].mean(axis=0) - mean_styles[away_from].mean(axis=0)).astype(np.float32)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
