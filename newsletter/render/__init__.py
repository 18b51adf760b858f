"""render stage of the newsletter pipeline."""
