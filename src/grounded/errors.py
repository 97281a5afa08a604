"""Everything Grounded raises on purpose.

GroundedError
├── ConfigError          settings that cannot work together
├── InputError           a request or file the user sent is unusable (4xx)
│   └── LoadError        one file could not be read or parsed
├── NotFoundError        a document, collection or chunk does not exist (404)
├── RefusedError         the gateway turned a request away (401, 429, 503), with headers
├── StoreError           the store failed or is inconsistent (5xx)
└── EmbedderError        the embedding backend failed (5xx)
"""

from __future__ import annotations


class GroundedError(Exception):
    code = "grounded_error"
    http_status = 500


class ConfigError(GroundedError):
    code = "config_error"


class InputError(GroundedError):
    code = "invalid_request_error"
    http_status = 400


class LoadError(InputError):
    """A file was skipped; the message says why in words a user understands."""

    code = "load_error"
    http_status = 422


class NotFoundError(GroundedError):
    code = "not_found"
    http_status = 404


class RefusedError(GroundedError):
    """Turned away by the gateway: no valid key, over a limit, no capacity."""

    def __init__(
        self, message: str, status: int, code: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.http_status = status
        self.code = code
        self.headers = headers or {}


class StoreError(GroundedError):
    code = "store_error"


class EmbedderError(GroundedError):
    code = "embedder_error"
    http_status = 502
