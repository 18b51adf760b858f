"""plan stage of the newsletter pipeline."""
