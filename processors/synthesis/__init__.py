"""Text to speech: base voices, engines, conversion and text chunking."""
