"""Grounded: answers grounded in your support documents, with citations."""

__version__ = "0.1.0"

__all__ = ["__version__"]
