"""triggers stage of the newsletter pipeline."""
