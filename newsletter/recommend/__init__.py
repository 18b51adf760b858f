"""recommend stage of the newsletter pipeline."""
