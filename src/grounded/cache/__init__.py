"""The response cache: exact and semantic hits, invalidated by the documents they cite."""

from grounded.cache.responses import CachedAnswer, ResponseCache

__all__ = ["CachedAnswer", "ResponseCache"]
