"""Decoding, resampling, loudness, the quality gate and voice activity."""
