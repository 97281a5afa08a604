"""Wire models of the HTTP API (OpenAI's shapes plus Grounded's documented extensions)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _encodable(text: str) -> str:
    # JSON's \ud800-style escapes can decode to a lone surrogate, which no tokenizer or
    # database takes: refused here as a 400, not a TypeError deep down as a 500.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (it holds a lone surrogate)") from None
    return text


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None

    @field_validator("content")
    @classmethod
    def _content_is_unicode(
        cls, content: str | list[dict[str, Any]] | None
    ) -> str | list[dict[str, Any]] | None:
        if isinstance(content, str):
            _encodable(content)
        elif content is not None:
            for part in content:
                if isinstance(part.get("text"), str):
                    _encodable(part["text"])
        return content

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if isinstance(self.content, list):
            return " ".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return ""


class RetrievalOptions(BaseModel):
    """Grounded extension, sent as `grounded` in the request body (extra_body in the SDK)."""

    model_config = ConfigDict(extra="forbid")

    retrieval: bool = True
    collection: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    k: int | None = Field(None, ge=1, le=20)
    source_prefix: str | None = Field(None, max_length=512)
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=16)

    @field_validator("source_prefix")
    @classmethod
    def _prefix_is_unicode(cls, prefix: str | None) -> str | None:
        return _encodable(prefix) if prefix is not None else None

    @field_validator("metadata")
    @classmethod
    def _metadata_is_storable(
        cls, metadata: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        # One check for the whole map keeps the error plain; a constrained float inside the
        # union would report a mismatch against every member of it.
        for key, value in metadata.items():
            _encodable(key)
            if isinstance(value, str):
                _encodable(value)
            elif isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"metadata values must be finite numbers, not {value}")
        return metadata


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(None, max_length=128)
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32768)
    temperature: float | None = Field(None, ge=0, le=2)
    n: int | None = Field(None, ge=1, le=1)
    user: str | None = Field(None, max_length=256)
    grounded: RetrievalOptions = Field(default_factory=RetrievalOptions)


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] | None = None

    @field_validator("input")
    @classmethod
    def _input_is_unicode(cls, value: str | list[str]) -> str | list[str]:
        for text in [value] if isinstance(value, str) else value:
            _encodable(text)
        return value


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=2000)

    @field_validator("comment")
    @classmethod
    def _comment_is_unicode(cls, comment: str | None) -> str | None:
        return _encodable(comment) if comment is not None else None
