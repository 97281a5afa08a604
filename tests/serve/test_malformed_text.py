"""Text that cannot be encoded (lone surrogates) and numbers JSON cannot hold (NaN,
infinities) are refused as 400 JSON errors, never passed on to fail as a 500."""

from __future__ import annotations

import httpx
import pytest


def post(server: str, path: str, body: bytes) -> httpx.Response:
    # Raw bytes: a client library would refuse to encode a lone surrogate itself.
    return httpx.post(
        f"{server}{path}",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )


def assert_refused(response: httpx.Response, param: str | None = None) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error" and error["code"]
    if param is not None:
        assert error["param"] == param
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"input": "\\ud800"}',
        b'{"input": "tail \\udfff"}',
        b'{"input": ["fine", "\\ud800 then text"]}',
    ],
)
def test_embeddings_refuse_lone_surrogates(server: str, body: bytes) -> None:
    response = post(server, "/v1/embeddings", body)
    assert_refused(response, "input")
    assert "surrogate" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "content",
    [
        b'"\\ud800"',
        b'"refund \\udc00 policy"',
        b'[{"type": "text", "text": "\\ud800"}]',
    ],
)
def test_chat_refuses_lone_surrogates(server: str, content: bytes) -> None:
    body = b'{"messages": [{"role": "user", "content": ' + content + b"}]}"
    assert_refused(post(server, "/v1/chat/completions", body))


def test_feedback_refuses_a_lone_surrogate_comment(server: str) -> None:
    body = b'{"answer_id": "abc", "rating": "down", "comment": "\\ud800"}'
    assert_refused(post(server, "/v1/feedback", body), "comment")


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_chat_refuses_non_finite_metadata_filters(server: str, value: bytes) -> None:
    body = (
        b'{"messages": [{"role": "user", "content": "What is the refund policy?"}], '
        b'"grounded": {"metadata": {"score": ' + value + b"}}}"
    )
    response = post(server, "/v1/chat/completions", body)
    assert_refused(response, "grounded.metadata")
    assert "finite" in response.json()["error"]["message"]


def test_ordinary_text_still_embeds(server: str) -> None:
    response = post(server, "/v1/embeddings", '{"input": ["café ☕", "日本語"]}'.encode())
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 2
