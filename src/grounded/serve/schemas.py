"""Wire models of the HTTP API (OpenAI's shapes plus Grounded's documented extensions)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None

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


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=2000)
