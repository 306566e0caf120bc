"""espeak-ng's IPA for a piece of text: what Kokoro is fed and what phoneme error rates compare against."""

from __future__ import annotations

import shutil
import subprocess

from processors.constants import ESPEAK_TIMEOUT_S
from processors.errors import ExternalToolMissingError, SynthesisError


def espeak_ipa(text: str, espeak_voice: str) -> str:
    """IPA of ``text`` as espeak-ng voice ``espeak_voice`` says it; clauses and words separated by single spaces."""
    if shutil.which("espeak-ng") is None:
        raise ExternalToolMissingError("espeak-ng is not installed (apt-get install -y espeak-ng)")
    try:
        completed = subprocess.run(
            ["espeak-ng", "-q", "--ipa", "-v", espeak_voice, "--", text],
            capture_output=True, timeout=ESPEAK_TIMEOUT_S, check=True,
        )
    except subprocess.TimeoutExpired as error:
        raise SynthesisError(f"espeak-ng took over {ESPEAK_TIMEOUT_S} s to phonemise the text") from error
    except subprocess.CalledProcessError as error:
        detail = error.stderr.decode(errors="replace")[-200:]
        raise SynthesisError(f"espeak-ng could not phonemise the text: {detail}") from error
    return " ".join(completed.stdout.decode("utf-8", errors="replace").split())
