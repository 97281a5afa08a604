"""The HTTP API against a real server, with the official openai SDK as the client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import SAMPLES


def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


def extension(obj: Any) -> dict[str, Any]:
    return dict(obj.model_extra or {}).get("grounded") or {}


def test_answer_is_grounded_with_citations(server: str) -> None:
    completion = client(server).chat.completions.create(
        model="grounded-extractive",
        messages=[{"role": "user", "content": "Can I return a laptop after 45 days?"}],
    )
    text = completion.choices[0].message.content or ""
    assert "30 days" in text and "[1]" in text and "extract" in text
    citations = extension(completion)["citations"]
    assert citations[0]["source"] == "articles/returns.md"
    for field in ("index", "source", "section", "snippet", "score", "chunk_id", "doc_id", "text"):
        assert field in citations[0]
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_extract_says_only_what_the_passages_say(server: str) -> None:
    completion = client(server).chat.completions.create(
        model="grounded-extractive",
        messages=[{"role": "user", "content": "how long is the warranty on a tent?"}],
    )
    text = completion.choices[0].message.content or ""
    passages = " ".join(" ".join(c["text"].split()) for c in extension(completion)["citations"])
    body = text.split(":", 1)[1]
    import re

    for sentence in re.split(r"\s*\[\d+\]\s*", body):
        if sentence.strip():
            assert sentence.strip() in passages


def test_stream_follows_openai_chunk_format_and_ends_with_usage(server: str) -> None:
    stream = client(server).chat.completions.create(
        model="grounded-extractive",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "what does express shipping cost?"}],
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([p for p in pieces if p]) > 5, "streamed word by word"
    assert "$14.99" in "".join(pieces)
    assert extension(chunks[0])["citations"]
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals and finals[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_raw_stream_ends_with_done(server: str) -> None:
    with httpx.stream(
        "POST",
        f"{server}/v1/chat/completions",
        json={
            "stream": True,
            "messages": [{"role": "user", "content": "gift card balance"}],
        },
        timeout=30,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


def test_retrieval_can_be_turned_off_and_scoped(server: str) -> None:
    off = client(server).chat.completions.create(
        model="grounded-extractive",
        messages=[{"role": "user", "content": "laptop returns"}],
        extra_body={"grounded": {"retrieval": False}},
    )
    assert extension(off)["citations"] == []
    assert "could not find" in (off.choices[0].message.content or "")
    scoped = client(server).chat.completions.create(
        model="grounded-extractive",
        messages=[{"role": "user", "content": "laptop returns"}],
        extra_body={"grounded": {"k": 2, "source_prefix": "policies/"}},
    )
    citations = extension(scoped)["citations"]
    assert len(citations) == 2 and all(c["source"].startswith("policies/") for c in citations)
    empty = client(server).chat.completions.create(
        model="grounded-extractive",
        messages=[{"role": "user", "content": "laptop returns"}],
        extra_body={"grounded": {"collection": "nothing-here"}},
    )
    assert extension(empty)["citations"] == []


def test_follow_up_is_rewritten_before_retrieval(server: str) -> None:
    completion = client(server).chat.completions.create(
        model="grounded-extractive",
        messages=[
            {"role": "user", "content": "Can I return a laptop after 45 days?"},
            {"role": "assistant", "content": "Laptops can be returned within 30 days."},
            {"role": "user", "content": "and for phones?"},
        ],
    )
    query = extension(completion)["standalone_query"].lower()
    assert "phones" in query and "return" in query and "laptop" not in query
    assert "14 days" in (completion.choices[0].message.content or "")


def test_unknown_model_is_404_in_openai_shape(server: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(server).chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[]", 400, "invalid_request"),
        (json.dumps({"messages": []}).encode(), 400, "invalid_request"),
        (
            json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(),
            400,
            "invalid_request",
        ),
        (
            json.dumps({"messages": [{"role": "user", "content": "x" * 5000}]}).encode(),
            400,
            "message_too_long",
        ),
        (
            json.dumps({"messages": [{"role": "user", "content": "hi"}] * 60}).encode(),
            400,
            "too_many_messages",
        ),
        (
            json.dumps({"messages": [{"role": "assistant", "content": "hi"}]}).encode(),
            400,
            "invalid_messages",
        ),
        (
            json.dumps(
                {"messages": [{"role": "user", "content": "hi"}], "max_tokens": -5}
            ).encode(),
            400,
            "invalid_request",
        ),
        (
            json.dumps(
                {"messages": [{"role": "user", "content": "hi"}], "grounded": {"k": 999}}
            ).encode(),
            400,
            "invalid_request",
        ),
        (
            json.dumps(
                {
                    "messages": [{"role": "user", "content": "hi"}],
                    "grounded": {"metadata": {"a'x": 1}},
                }
            ).encode(),
            400,
            "invalid_request_error",
        ),
        (b"x" * 300_000, 413, "request_too_large"),
    ],
)
def test_malformed_requests_get_4xx_json(server: str, body: bytes, status: int, code: str) -> None:
    response = httpx.post(
        f"{server}/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["type"]
    assert "Traceback" not in response.text


def test_models_and_embeddings_through_the_sdk(server: str) -> None:
    api = client(server)
    assert "grounded-extractive" in [m.id for m in api.models.list().data]
    result = api.embeddings.create(
        model="all-MiniLM-L6-v2", input=["return a laptop", "tent warranty"]
    )
    assert len(result.data) == 2 and len(result.data[0].embedding) == 384
    with pytest.raises(openai.BadRequestError):
        api.embeddings.create(model="x", input=["x"] * 300)


def test_documents_upload_list_answer_and_delete(server: str, tmp_path: Path) -> None:
    note = tmp_path / "holiday-hours.md"
    note.write_text(
        "# Holiday Hours\n\nOur Seattle store opens at 7 a.m. on Boxing Day, with doorbusters.\n"
    )
    with note.open("rb") as handle:
        response = httpx.post(
            f"{server}/v1/documents",
            files={"files": ("holiday-hours.md", handle)},
            data={"collection": "default"},
            timeout=120,
        )
    assert response.status_code == 201, response.text
    doc = response.json()["documents"][0]
    assert doc["source"] == "holiday-hours.md" and doc["chunks"] == 1
    listed = httpx.get(f"{server}/v1/documents", params={"source_prefix": "holiday"}).json()["data"]
    assert [d["id"] for d in listed] == [doc["id"]]
    assert httpx.get(f"{server}/v1/documents/{doc['id']}").json()["title"] == "Holiday Hours"
    answer = client(server).chat.completions.create(
        model="grounded-extractive",
        messages=[{"role": "user", "content": "when does the Seattle store open on Boxing Day?"}],
    )
    assert extension(answer)["citations"][0]["source"] == "holiday-hours.md"
    assert httpx.delete(f"{server}/v1/documents/{doc['id']}").status_code == 200
    assert httpx.get(f"{server}/v1/documents/{doc['id']}").status_code == 404
    again = client(server).chat.completions.create(
        model="grounded-extractive",
        messages=[{"role": "user", "content": "when does the Seattle store open on Boxing Day?"}],
    )
    assert all(c["source"] != "holiday-hours.md" for c in extension(again)["citations"])


def test_bad_uploads_are_refused_clearly(server: str) -> None:
    exe = httpx.post(f"{server}/v1/documents", files={"files": ("tool.exe", b"MZ\x00")}, timeout=30)
    assert exe.status_code == 415 and exe.json()["error"]["code"] == "unsupported_file_type"
    empty = httpx.post(f"{server}/v1/documents", files={"files": ("empty.md", b"")}, timeout=30)
    assert empty.status_code == 422 and "empty file" in empty.json()["failed"][0]["reason"]
    assert httpx.delete(f"{server}/v1/documents/nope").status_code == 404


def test_feedback_is_stored(server: str) -> None:
    answer = client(server).chat.completions.create(
        model="grounded-extractive", messages=[{"role": "user", "content": "student discount"}]
    )
    ok = httpx.post(
        f"{server}/v1/feedback",
        json={"answer_id": answer.id, "rating": "down", "comment": "too long"},
    )
    assert ok.status_code == 201
    bad = httpx.post(f"{server}/v1/feedback", json={"answer_id": answer.id, "rating": "meh"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rating"
    # Read back through the API: the file on the embedded store, the table on PostgreSQL.
    rows = httpx.get(f"{server}/v1/feedback").json()["data"]
    assert (answer.id, "down", "too long") in [
        (r["answer_id"], r["rating"], r["comment"]) for r in rows
    ]


def test_request_log_records_each_answer(server: str, index_copy: Path) -> None:
    answer = client(server).chat.completions.create(
        model="grounded-extractive", messages=[{"role": "user", "content": "price match policy"}]
    )
    lines = (index_copy / "logs" / "requests.jsonl").read_text().splitlines()
    record = next(json.loads(line) for line in lines if json.loads(line)["answer_id"] == answer.id)
    assert record["question"] == "price match policy" and record["chunk_ids"]
    assert record["prompt"][0]["role"] == "system" and "[1]" in record["prompt"][0]["content"]
    assert record["answer"] == answer.choices[0].message.content
    assert (
        record["latency_ms"]["retrieval"] > 0
        and record["latency_ms"]["total"] >= record["latency_ms"]["retrieval"]
    )
    assert record["usage"]["completion_tokens"] > 0


def test_health_readiness_schema_and_page(server: str) -> None:
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"store": "ok", "model": "ok"}
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    for path in (
        "/v1/chat/completions",
        "/v1/models",
        "/v1/embeddings",
        "/v1/documents",
        "/v1/feedback",
    ):
        assert path in paths
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and "<textarea" in page.text
    assert httpx.get(f"{server}/v1/nothing").json()["error"]["type"] == "not_found_error"


def test_samples_exist() -> None:
    assert (SAMPLES / "articles" / "returns.md").is_file()


def test_embeddings_base64_and_float_agree(server: str) -> None:
    import base64

    import numpy as np

    plain = httpx.post(
        f"{server}/v1/embeddings", json={"input": "tent", "encoding_format": "float"}
    )
    packed = httpx.post(
        f"{server}/v1/embeddings", json={"input": "tent", "encoding_format": "base64"}
    )
    floats = np.array(plain.json()["data"][0]["embedding"], dtype=np.float32)
    decoded = np.frombuffer(base64.b64decode(packed.json()["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(floats, decoded, rtol=1e-6)
    assert abs(float(np.linalg.norm(floats)) - 1.0) < 1e-3
