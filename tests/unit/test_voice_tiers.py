"""The refined tier against the instant one, judged by CAM++, an encoder the fit never sees."""

from __future__ import annotations

import numpy as np

from infra.cloning import refine_locally
from processors.audio.codec_quality import encode_wav
from processors.cloning import learn_voice, speak_texts
from processors.constants import REFINEMENT_STEPS
from processors.voice.speaker import cosine_similarity

HELD_OUT_SENTENCES = (
    "These days a chicken leg is a rare dish.",
    "The juice of lemons makes fine punch.",
    "A large size in stockings is hard to sell.",
)


def test_a_refined_voice_is_nearer_its_speaker_than_the_instant_voice_to_an_independent_judge(
    english_reference_speech, english_heldout_speech, speaker_encoder, kokoro_synthesizer, stock_voices,
    kokoro_engine, whisper_transcriber, independent_encoder,
):
    voice = learn_voice([encode_wav(*english_reference_speech)], encoder=speaker_encoder, stock=stock_voices)
    refined, fit = refine_locally(voice, kokoro_synthesizer, stock_voices, kokoro_engine, whisper_transcriber,
                                  REFINEMENT_STEPS, on_progress=None)
    target = independent_encoder.embed(*english_heldout_speech)

    def heard_similarity(profile) -> float:
        spoken = speak_texts(profile, HELD_OUT_SENTENCES, engine=kokoro_engine)
        return float(np.mean([cosine_similarity(independent_encoder.embed(s.samples, s.sample_rate_hz), target)
                              for s in spoken]))

    assert fit["kept"] and fit["similarity_objective_after"] > fit["similarity_objective_before"]
    assert heard_similarity(refined) > heard_similarity(voice.profile) + 0.01
