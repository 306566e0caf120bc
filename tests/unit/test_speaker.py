import pickle
import subprocess
import sys

import numpy as np
import pytest

from processors.audio.codec_quality import resample
from processors.errors import InvalidEmbeddingError, SpeakerModelError, SpeechTooShortError
from processors.voice.ge2e import Ge2eEncoder, load_legacy_torch_state, packaged_weights_path
from processors.voice.speaker import cosine_similarity


@pytest.fixture(scope="module")
def reference_embedding(speaker_encoder, english_reference_speech):
    samples, sample_rate_hz = english_reference_speech
    return speaker_encoder.embed(samples[: 12 * sample_rate_hz], sample_rate_hz)


def test_embedding_is_a_unit_float32_vector(reference_embedding):
    assert reference_embedding.shape == (256,)
    assert reference_embedding.dtype == np.float32
    assert np.linalg.norm(reference_embedding) == pytest.approx(1.0, abs=1e-5)


def test_same_speaker_is_closer_than_another_real_speaker(
    speaker_encoder, reference_embedding, english_heldout_speech, czech_male_speech
):
    same_speaker = cosine_similarity(reference_embedding, speaker_encoder.embed(*english_heldout_speech))
    other_speaker = cosine_similarity(reference_embedding, speaker_encoder.embed(*czech_male_speech))

    assert same_speaker > 0.85
    assert other_speaker < 0.7
    assert same_speaker - other_speaker > 0.2


def test_synthetic_voice_is_not_mistaken_for_the_real_speaker(
    speaker_encoder, reference_embedding, english_heldout_speech, espeak_tts
):
    robotic = speaker_encoder.embed(*espeak_tts.synthesize("Please leave a message after the tone.", "en"))

    assert (
        cosine_similarity(reference_embedding, robotic)
        < cosine_similarity(reference_embedding, speaker_encoder.embed(*english_heldout_speech)) - 0.2
    )


def test_embedding_does_not_depend_on_the_sample_rate(speaker_encoder, english_heldout_speech, reference_embedding):
    samples, sample_rate_hz = english_heldout_speech
    at_16k = speaker_encoder.embed(samples, sample_rate_hz)
    at_48k = speaker_encoder.embed(resample(samples, sample_rate_hz, 48000), 48000)

    assert cosine_similarity(at_16k, at_48k) > 0.98


def test_batch_embedding_equals_one_by_one(speaker_encoder, english_heldout_speech, czech_male_speech):
    clips = [english_heldout_speech[0], czech_male_speech[0][: 3 * 16000]]

    batch = speaker_encoder.embed_many(clips, 16000)

    assert batch.shape == (2, 256)
    for clip, embedding in zip(clips, batch, strict=True):
        assert np.allclose(embedding, speaker_encoder.embed(clip, 16000), atol=1e-5)


@pytest.mark.parametrize("seconds", [0.0, 0.5])
def test_too_little_speech_is_a_named_error(speaker_encoder, english_heldout_speech, seconds):
    samples, sample_rate_hz = english_heldout_speech

    with pytest.raises(SpeechTooShortError):
        speaker_encoder.embed(samples[: int(seconds * sample_rate_hz) + 1], sample_rate_hz)


def test_silence_is_a_named_error(speaker_encoder):
    with pytest.raises(SpeechTooShortError):
        speaker_encoder.embed(np.zeros(5 * 16000, np.float32), 16000)


@pytest.fixture(scope="module")
def resemblyzer_encoder():
    """Resemblyzer's own torch encoder, the reference the numpy encoder must reproduce."""
    pytest.importorskip("torch")
    resemblyzer = pytest.importorskip("resemblyzer")
    return resemblyzer.VoiceEncoder(device="cpu", verbose=False)


@pytest.mark.parametrize("speech", ["english_reference_speech", "english_heldout_speech", "czech_male_speech"])
def test_embeddings_match_resemblyzers_torch_encoder(speaker_encoder, resemblyzer_encoder, request, speech):
    from resemblyzer import preprocess_wav

    samples, sample_rate_hz = request.getfixturevalue(speech)
    assert sample_rate_hz == 16000

    theirs = resemblyzer_encoder.embed_utterance(preprocess_wav(samples), rate=1.3, min_coverage=0.75)

    assert cosine_similarity(speaker_encoder.embed(samples, sample_rate_hz), theirs) >= 0.9999


def test_weights_load_as_torch_loads_them():
    torch = pytest.importorskip("torch")

    ours = load_legacy_torch_state(packaged_weights_path())
    theirs = torch.load(packaged_weights_path(), map_location="cpu", weights_only=False)["model_state"]

    assert sorted(ours) == sorted(theirs)
    for name, tensor in theirs.items():
        assert ours[name].dtype == np.float32
        assert np.array_equal(ours[name], tensor.numpy()), name


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    checkpoint = tmp_path / "tampered.pt"
    header = [0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}]
    checkpoint.write_bytes(b"".join(pickle.dumps(item) for item in [*header, print]))

    with pytest.raises(SpeakerModelError, match="builtins.print"):
        Ge2eEncoder(checkpoint)


def test_the_encoder_does_not_load_torch():
    # Resemblyzer's package imports torch, whose CUDA build costs every worker ~600 MB resident
    script = (
        "import sys; import numpy as np; from processors.voice.speaker import SpeakerEncoder; "
        "SpeakerEncoder().embed(np.random.default_rng(0).uniform(-0.3, 0.3, 32000).astype(np.float32), 16000); "
        "print('torch' in sys.modules)"
    )

    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert completed.stdout.strip() == "False"


def test_cosine_similarity_of_a_vector_with_itself_is_one():
    vector = np.array([3.0, 4.0])

    assert cosine_similarity(vector, 2 * vector) == pytest.approx(1.0)
    assert cosine_similarity(vector, np.array([-4.0, 3.0])) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("first", "second"), [(np.ones(3), np.ones(4)), (np.zeros(3), np.ones(3)), (np.ones((2, 2)), np.ones((2, 2)))]
)
def test_cosine_similarity_rejects_unusable_embeddings(first, second):
    with pytest.raises(InvalidEmbeddingError):
        cosine_similarity(first, second)
