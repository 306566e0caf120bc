"""Consent, watermark, audit chain and abuse signals."""
