"""api stage of the newsletter pipeline."""
