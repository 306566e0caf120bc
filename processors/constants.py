"""Every tunable number of the processors, with its unit in its name."""

# Sample rates
ANALYSIS_SAMPLE_RATE_HZ = 16000  # speaker embedding, voice profile and WORLD analysis
OUTPUT_SAMPLE_RATE_HZ = 24000  # synthesised speech handed to callers

# Decoding
MAX_DECODE_DURATION_S = 3600.0  # refuse to hold more than an hour of audio in memory
FFMPEG_TIMEOUT_S = 120

# Loudness, in dB relative to full scale (a full-scale sine is 0 dBFS peak, -3 dBFS RMS)
TARGET_RMS_DBFS = -23.0
PEAK_CEILING_DBFS = -1.0
SILENT_PEAK_DBFS = -60.0  # nothing louder than this: the recording is silent
LEVEL_FLOOR_DBFS = -120.0  # stands in for log(0)

# Energy framing (quality gate and silence trimming)
ENERGY_FRAME_MS = 20.0
NOISE_FLOOR_PERCENTILE = 10.0  # quietest frames taken as the noise floor
SPEECH_ABOVE_NOISE_DB = 6.0  # a frame louder than the noise floor by this much holds speech
SPEECH_ABSOLUTE_FLOOR_DBFS = -50.0  # and is at least this loud
TRIM_PADDING_MS = 100.0  # silence kept either side of the speech when trimming
VOICING_MIN_F0_HZ = 60.0
VOICING_MAX_F0_HZ = 400.0
VOICING_THRESHOLD = 0.6  # normalised autocorrelation peak of a voiced frame; white and pink noise stay under 0.45
VOICING_MAX_FRAMES = 3000  # a minute of frames is enough to estimate how much of a long sample is voiced

# Quality gate
MIN_SPEECH_DURATION_S = 1.0
MIN_VOICED_DURATION_S = 0.5
MAX_SAMPLE_DURATION_S = 600.0
RECOMMENDED_SPEECH_DURATION_S = 30.0
MIN_SNR_DB = 10.0
MAX_CLIPPING_RATIO = 0.01
CLIPPING_LEVEL = 0.999  # |sample| at or above this counts as clipped
QUIET_RMS_DBFS = -40.0  # speech quieter than this deserves a suggestion to move closer

# Speaker embedding (Resemblyzer GE2E)
EMBEDDING_SIZE = 256
MIN_EMBEDDING_SPEECH_S = 1.0  # shorter clips carry too little voice; 1.0–1.6 s is zero-padded to one window
EMBEDDING_PARTIALS_PER_S = 1.3  # overlapping 1.6 s windows averaged into one embedding
EMBEDDING_MIN_PARTIAL_COVERAGE = 0.75

# WORLD analysis (voice profile and conversion)
WORLD_FRAME_PERIOD_MS = 5.0
APERIODICITY_INTERVAL_MS = 40.0  # D4C runs on frames this far apart; aperiodicity is interpolated between
F0_FLOOR_HZ = 60.0
DIO_DOWNSAMPLING = 4  # dio tracks F0 on audio decimated this much (stonemask refines it): a quarter of the cost
# (40 ms D4C and 4x dio: conversion RTF 0.046 -> 0.041 for ~2 points of Whisper WER, within its noise)
# Envelope resolution when converting: half the 1024 bins F0_FLOOR_HZ needs, at half the analysis and
# synthesis cost; the envelope is reduced to MCEP_DIMENSIONS coefficients on the way anyway. (10 ms
# frames would cut the cost by another quarter, but lost ~10 points of Whisper word accuracy.)
CONVERSION_FFT_SIZE = 512
# Conversion runs CheapTrick every other frame and interpolates the log envelope: 6 % off the
# synthesis time, with no measurable change in similarity or Whisper WER (3 speakers x 8 sentences)
CONVERSION_ENVELOPE_INTERVAL_MS = 10.0
F0_CEILING_HZ = 500.0
# How far conversion may narrow or widen a base voice's per-order mel-cepstral spread toward the
# target's. Narrowing Piper's natural formant movement costs words (3 speakers x 8 sentences x 3 takes:
# Whisper WER 23.6 -> 17.7 % with this bound, similarity 0.605 -> 0.602); narrowing espeak-ng's
# exaggerated movement helps it (WER 56 -> 61 % when bounded), so espeak-ng is left unbounded.
PIPER_SPREAD_RATIO_BOUNDS = (0.8, 1.25)
UNBOUNDED_SPREAD_RATIO = (0.0, float("inf"))
MCEP_DIMENSIONS = 40  # WORLD-coded mel-cepstrum of the spectral envelope, c0 included
# Bands in which a voice's breathiness (mean aperiodicity of voiced frames, dB) is measured and matched:
# finer at the bottom, where voicing is strongest and breathy and pressed voices differ most.
APERIODICITY_BAND_EDGES_HZ = (0.0, 1000.0, 2000.0, 3000.0, 4000.0, 5500.0, 8000.0)
APERIODICITY_FLOOR = 1e-4  # -80 dB: WORLD's aperiodicity of a perfectly periodic bin is ~1e-12
APERIODICITY_CEILING = 0.999  # fully aperiodic bins stay (almost) noise
UNVOICED_LEVEL_PERCENTILE = 40.0  # the quietest unvoiced frames are pauses and closures, not fricatives
MIN_UNVOICED_FRAMES = 20  # 100 ms of fricatives: fewer give no usable statistics
MIN_VOICED_FRACTION = 0.2  # noise has ~5 % spurious voiced frames, read speech 50-80 %
MIN_PROFILE_VOICED_S = 1.0
MIN_VOICED_SEGMENT_MS = 30.0  # shorter voiced stretches are F0-tracker flicker, not syllables

# Voice profile
VOICE_PROFILE_VERSION = 3  # 2 added aperiodicity and unvoiced-envelope statistics, 3 the Kokoro voice; 1 and 2 still load
SAME_SPEAKER_MIN_SIMILARITY = 0.75  # same voice, other sentences: 0.85-0.96; other voices: 0.4-0.7
F0_RANGE_LOW_PERCENTILE = 5.0
F0_RANGE_HIGH_PERCENTILE = 95.0

# Voice conversion
WARP_FACTOR_MIN = 0.8  # frequency-warp bounds: about the spread of adult vocal-tract lengths
WARP_FACTOR_MAX = 1.25
WARP_SEARCH_STEPS = 46
WARP_FIT_LOW_HZ = 100.0  # band in which warped source and target mean envelopes are compared
WARP_FIT_HIGH_HZ = 7000.0
MIN_SPEED = 0.25
MAX_SPEED = 4.0

# Base text-to-speech (espeak-ng)
ESPEAK_VOICES = {  # our language code -> espeak-ng voice
    "en": "en-us",
    "ml": "ml",
    "hi": "hi",
    "ta": "ta",
    "te": "te",
    "kn": "kn",
    "bn": "bn",
    "fr": "fr-fr",
    "de": "de",
    "es": "es",
    "it": "it",
    "pt": "pt-br",
    "cs": "cs",
    "ru": "ru",
}
ESPEAK_FEMALE_VARIANT = "f3"  # closest espeak variant to real female voices by speaker similarity
DEFAULT_WORDS_PER_MINUTE = 160
MIN_WORDS_PER_MINUTE = 80
MAX_WORDS_PER_MINUTE = 450
MAX_TEXT_CHARACTERS = 5000  # per espeak-ng call; longer requests are spoken chunk by chunk
ESPEAK_TIMEOUT_S = 60

# Synthesis controls (user-facing ranges)
SPEED_RANGE = (0.5, 2.0)
PITCH_SEMITONES_RANGE = (-12.0, 12.0)
ENERGY_DB_RANGE = (-12.0, 12.0)
FEMALE_BASE_VOICE_MIN_F0_HZ = 165.0  # targets pitched above this start from espeak's female variant
EMOTION_PRESETS = {  # emotion -> (pitch shift st, pitch range scale, speed factor, energy dB)
    "neutral": (0.0, 1.0, 1.0, 0.0),
    "happy": (2.0, 1.3, 1.08, 2.0),
    "sad": (-2.0, 0.7, 0.88, -3.0),
    "angry": (1.0, 1.2, 1.05, 4.0),
}

# Text normalisation and chunking
MAX_REQUEST_TEXT_CHARACTERS = 20000  # one synthesis request, as the request schema allows
MAX_CHUNK_CHARACTERS = 400  # a streamed chunk: a few sentences, a few seconds of speech
MIN_TAIL_CHUNK_CHARACTERS = 60  # a shorter last chunk joins the one before: too little speech to watermark well
CHUNK_PAUSE_MS = 250.0  # silence between concatenated chunks
SCORED_EXCERPT_S = 30.0  # a synthesis is scored on its leading chunks up to this long: 21 minutes took 16 min and 3.6 GB

# Voice morphing and transforms
MIN_MORPH_VOICES = 2
MAX_MORPH_VOICES = 4
MORPH_WEIGHT_TOLERANCE = 1e-6
GENDER_SHIFT_SEMITONES = 7.0  # shift 1.0 moves pitch about the gap between typical male and female voices
GENDER_SHIFT_FORMANT_FACTOR = 1.17  # and formants by the typical female/male vocal-tract ratio
AGE_SHIFT_SEMITONES = -2.0  # shift 1.0 (older) lowers pitch a little
AGE_SHIFT_FORMANT_FACTOR = 0.95  # and lengthens the apparent vocal tract
AGE_SHIFT_PITCH_RANGE_SCALE = 0.8  # older voices intonate less

# Quality scoring
SCORING_SAMPLE_RATE_HZ = 16000  # Whisper and DNSMOS both listen at 16 kHz
WHISPER_COMPUTE_TYPE = "int8"
# Beam search at temperature 0: greedy decoding loops on robotic speech (WER > 100 %), and Whisper's
# sampling fallback for those loops is not repeatable even when seeded (CTranslate2 samples in its own
# threads). Five beams avoid the loops, hear as well as the fallback did, and give the same words every time.
WHISPER_BEAM_SIZE = 5
WHISPER_LANGUAGES = frozenset({"en"})  # the packaged model is tiny.en

# Voice activity detection (silero-vad) and the ingest gate's DNSMOS
VAD_SAMPLE_RATE_HZ = 16000  # silero-vad listens at 16 kHz in 32 ms windows
VAD_SPEECH_PROBABILITY = 0.5  # a window more likely speech than this opens a speech stretch
VAD_MIN_SPEECH_MS = 250  # shorter stretches are clicks and breaths
VAD_MIN_SILENCE_MS = 100  # shorter pauses do not split a stretch
DNSMOS_EXCERPT_S = 10.0  # DNSMOS hears 9 s windows; one excerpt this long is one window
DNSMOS_MAX_EXCERPTS = 3  # spread over the speech, so a long upload costs no more to score than 30 s
MIN_INGEST_DNSMOS = 2.5  # clean read speech scores 3.0-3.3; with 5 dB noise, about 1.8

# Kokoro-82M (neural base voice with a 256-d style vector)
KOKORO_SAMPLE_RATE_HZ = 24000
KOKORO_STYLE_SIZE = 256
KOKORO_DECODER_STYLE_DIMS = 128  # style[:128] conditions the decoder (timbre), style[128:] the prosody predictor
KOKORO_STYLE_ROWS = 510  # a pack has one style row per token count 1..510
KOKORO_MAX_TOKENS = 510
KOKORO_TRIM_LEVEL = 0.01  # |sample| under this at either end of a render is silence Kokoro pads with
KOKORO_TRIM_PADDING_MS = 30.0
# Instant voices: blend of the stock packs nearest the reference by speaker embedding
INSTANT_VOICE_CANDIDATES = 8  # nearest packs the blend may draw on
INSTANT_VOICE_BLEND_STEPS = 300  # projected-gradient steps over the simplex of blend weights
INSTANT_VOICE_MIN_WEIGHT = 0.02  # lighter packs are dropped from the blend and the rest renormalised
# Speech each stock pack is embedded from (computed once per pack set and cached)
PACK_EMBEDDING_PHRASES = (
    "The quick brown fox jumps over the lazy dog, and keeps on running.",
    "We will meet again next Tuesday at the old library near the station.",
)
KOKORO_GENDER_SHIFT_SCALE = 0.5  # gender shift 1.0 moves the style half the female-male pack-mean gap
REFINEMENT_STEPS = 16  # gradient steps of a refined voice's style fit: its similarity has mostly levelled off by then
# Refined voices: the style fit renders these phrases (its objective) and checks intelligibility on the others
REFINEMENT_PHRASES = (  # 2-3 s each: a step's cost grows with the speech rendered
    "Please call Stella and ask her to bring these things.",
    "The rainbow is a division of white light.",
    "Six spoons of fresh snow peas for her brother.",
)
REFINEMENT_CHECK_SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
)
# a refined voice is kept only if Whisper's WER on its renders is at most this much above the instant voice's
REFINEMENT_MAX_WER_INCREASE = 0.02
REFINEMENT_TIMEOUT_S = 1800.0  # a fit that runs longer is stopped and the instant voice stays
