"""simulate stage of the newsletter pipeline."""
