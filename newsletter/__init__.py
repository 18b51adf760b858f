"""newsletter: personal email newsletters with measured lift."""

__version__ = "0.1.0"
