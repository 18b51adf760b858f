"""report stage of the newsletter pipeline."""
