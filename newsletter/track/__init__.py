"""track stage of the newsletter pipeline."""
