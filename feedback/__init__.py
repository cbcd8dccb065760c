"""Anonymous survivor feedback and outcomes platform."""

__version__ = "0.1.0"
