"""store stage of the newsletter pipeline."""
