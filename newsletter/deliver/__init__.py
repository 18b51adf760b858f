"""deliver stage of the newsletter pipeline."""
