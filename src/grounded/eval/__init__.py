"""Measuring retrieval quality against labelled questions."""
