"""How outputs are judged: intelligibility, speaker similarity, quality, analysis reports."""
