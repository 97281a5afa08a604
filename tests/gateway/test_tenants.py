"""Keys and tenants over real HTTP: no key, no answer; and one tenant never sees another's
documents, retrieval results, cached answers, feedback or log lines — even when it tries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli
from tests.serve.conftest import running_server, server_settings

ADMIN = "admin-secret-for-tests"
ACME_DOC = """# Warranty

## Hoverboards

Acme hoverboards carry a warranty of 7 years; claim code ZEBRA-4471 starts a claim.
"""
GLOBEX_DOC = """# Warranty

## Toasters

Globex toasters carry a warranty of 2 years; bring the receipt to any store.
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tenants") / "data"


@pytest.fixture(scope="module")
def gateway(data_dir: Path, model_cache: Path) -> Iterator[str]:
    settings = server_settings(
        data_dir,
        model_cache,
        gateway={"auth": True, "admin_key": ADMIN},
        cache={"tenants": {"initech": {"enabled": False}}},
    )
    with running_server(settings) as url:
        yield url


def new_key(url: str, tenant: str, tier: str = "standard") -> str:
    response = httpx.post(
        f"{url}/v1/admin/keys",
        json={"tenant": tenant, "tier": tier},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def ask(url: str, key: str, question: str, **grounded: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": "grounded-extractive",
            "messages": [{"role": "user", "content": question}],
            "grounded": grounded,
        },
        headers=auth(key),
        timeout=60,
    )


def upload(url: str, key: str, name: str, text: str) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/v1/documents",
        files={"files": (name, text.encode())},
        headers=auth(key),
        timeout=120,
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["documents"][0])


@pytest.fixture(scope="module")
def tenants(gateway: str) -> dict[str, Any]:
    acme, globex = new_key(gateway, "acme"), new_key(gateway, "globex")
    return {
        "acme": acme,
        "globex": globex,
        "acme_doc": upload(gateway, acme, "warranty.md", ACME_DOC),
        "globex_doc": upload(gateway, globex, "warranty.md", GLOBEX_DOC),
    }


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer gk_000000000000_" + "x" * 32}, {"authorization": "Basic abc"}],
)
def test_requests_without_a_valid_key_get_401_in_openai_shape(
    gateway: str, headers: dict[str, str]
) -> None:
    for method, path in [
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/documents"),
        ("GET", "/v1/models"),
        ("POST", "/v1/feedback"),
        ("DELETE", "/v1/cache"),
    ]:
        response = httpx.request(method, f"{gateway}{path}", headers=headers, json={})
        assert response.status_code == 401, (path, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_api_key" and error["type"] == "authentication_error"
        assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{gateway}/healthz").status_code == 200


def test_admin_api_needs_the_admin_key_and_revocation_takes_effect(gateway: str) -> None:
    assert httpx.post(f"{gateway}/v1/admin/keys", json={"tenant": "x"}).status_code == 401
    wrong = {"authorization": "Bearer not-the-admin-key"}
    assert httpx.get(f"{gateway}/v1/admin/keys", headers=wrong).status_code == 401
    key = new_key(gateway, "revokee")
    assert ask(gateway, key, "hello there", retrieval=False).status_code == 200
    admin = {"authorization": f"Bearer {ADMIN}"}
    listed = httpx.get(f"{gateway}/v1/admin/keys?tenant=revokee", headers=admin).json()["data"]
    assert len(listed) == 1 and "key" not in listed[0] and key not in json.dumps(listed)
    response = httpx.delete(f"{gateway}/v1/admin/keys/{listed[0]['id']}", headers=admin)
    assert response.status_code == 200
    assert ask(gateway, key, "hello there", retrieval=False).status_code == 401
    bad = httpx.post(f"{gateway}/v1/admin/keys", json={"tenant": "Bad Name!"}, headers=admin)
    assert bad.status_code == 400 and "error" in bad.json()
    unknown_tier = httpx.post(
        f"{gateway}/v1/admin/keys", json={"tenant": "ok", "tier": "gold"}, headers=admin
    )
    assert unknown_tier.status_code == 400


def test_a_tenant_retrieves_only_its_own_documents(gateway: str, tenants: dict[str, Any]) -> None:
    question = "How long is the warranty and what is the claim code?"
    own = ask(gateway, tenants["acme"], question).json()
    assert "ZEBRA-4471" in own["choices"][0]["message"]["content"]
    other = ask(gateway, tenants["globex"], question).json()
    cited = [c["doc_id"] for c in other["grounded"]["citations"]]
    assert tenants["acme_doc"]["id"] not in cited
    assert "ZEBRA" not in json.dumps(other)
    # Naming the other tenant's stored collection is refused, not searched.
    sneaky = ask(gateway, tenants["globex"], question, collection="acme:default")
    assert sneaky.status_code == 400
    prefixed = ask(gateway, tenants["globex"], question, source_prefix="warranty")
    assert "ZEBRA" not in prefixed.text


def test_a_tenant_cannot_list_read_or_delete_another_tenants_documents(
    gateway: str, tenants: dict[str, Any]
) -> None:
    acme_id = tenants["acme_doc"]["id"]
    assert tenants["acme_doc"]["collection"] == "default"  # its own name, not acme:default
    globex = auth(tenants["globex"])
    listed = httpx.get(f"{gateway}/v1/documents", headers=globex).json()["data"]
    assert [d["id"] for d in listed] == [tenants["globex_doc"]["id"]]
    by_collection = httpx.get(f"{gateway}/v1/documents?collection=default", headers=globex)
    assert acme_id not in by_collection.text
    assert httpx.get(f"{gateway}/v1/documents/{acme_id}", headers=globex).status_code == 404
    assert httpx.delete(f"{gateway}/v1/documents/{acme_id}", headers=globex).status_code == 404
    acme = auth(tenants["acme"])
    assert httpx.get(f"{gateway}/v1/documents/{acme_id}", headers=acme).status_code == 200


def test_cached_answers_are_never_served_to_another_tenant(
    gateway: str, tenants: dict[str, Any]
) -> None:
    question = "What warranty do the hoverboards carry?"
    first = ask(gateway, tenants["acme"], question)
    again = ask(gateway, tenants["acme"], question)
    assert (first.headers["x-grounded-cache"], again.headers["x-grounded-cache"]) == (
        "miss",
        "hit-exact",
    )
    other = ask(gateway, tenants["globex"], question)
    assert other.headers["x-grounded-cache"] == "miss"
    assert "ZEBRA" not in other.text and "7 years" not in other.text
    # Flushing is per tenant too.
    flushed = httpx.delete(f"{gateway}/v1/cache", headers=auth(tenants["globex"]))
    assert flushed.status_code == 200
    assert ask(gateway, tenants["acme"], question).headers["x-grounded-cache"] == "hit-exact"


def test_feedback_stays_with_its_tenant(gateway: str, tenants: dict[str, Any]) -> None:
    answer = ask(gateway, tenants["acme"], "Which claim code starts a hoverboard claim?").json()
    response = httpx.post(
        f"{gateway}/v1/feedback",
        json={"answer_id": answer["id"], "rating": "up", "comment": "acme only"},
        headers=auth(tenants["acme"]),
    )
    assert response.status_code == 201
    mine = httpx.get(f"{gateway}/v1/feedback", headers=auth(tenants["acme"])).json()["data"]
    theirs = httpx.get(f"{gateway}/v1/feedback", headers=auth(tenants["globex"])).json()["data"]
    assert any(f["answer_id"] == answer["id"] for f in mine)
    assert all(f["answer_id"] != answer["id"] for f in theirs)
    assert "acme only" not in json.dumps(theirs)


def test_request_log_lines_name_their_tenant(
    gateway: str, tenants: dict[str, Any], data_dir: Path
) -> None:
    answer = ask(gateway, tenants["globex"], "How long are toasters under warranty?").json()
    lines = [json.loads(x) for x in (data_dir / "logs" / "requests.jsonl").read_text().splitlines()]
    line = next(x for x in lines if x["answer_id"] == answer["id"])
    assert line["tenant"] == "globex"


def test_cache_settings_apply_per_tenant(gateway: str) -> None:
    initech = new_key(gateway, "initech")
    upload(gateway, initech, "warranty.md", GLOBEX_DOC)
    question = "How long are toasters under warranty?"
    statuses = [ask(gateway, initech, question).headers["x-grounded-cache"] for _ in range(2)]
    assert statuses == ["miss", "miss"]  # caching is off for this tenant only


def test_a_deleted_document_can_be_uploaded_again_under_another_name(gateway: str) -> None:
    key = new_key(gateway, "umbrella")
    text = "# Recall\n\nUmbrella recalls the model X umbrella; bring it back for a refund.\n"
    first = upload(gateway, key, "recall.md", text)
    deleted = httpx.delete(f"{gateway}/v1/documents/{first['id']}", headers=auth(key))
    assert deleted.status_code == 200
    again = upload(gateway, key, "recall-2024.md", text)  # not a "duplicate" of a deleted one
    assert again["source"] == "recall-2024.md"


def test_upload_collection_names_cannot_leave_the_tenants_folder(gateway: str) -> None:
    key = new_key(gateway, "traveller")
    for name in ("..", ".", "../acme", ".hidden"):
        response = httpx.post(
            f"{gateway}/v1/documents",
            files={"files": ("faq.md", b"# FAQ\n\nSome text.")},
            data={"collection": name},
            headers=auth(key),
        )
        assert response.status_code == 400, (name, response.text)
        assert response.json()["error"]["code"] == "invalid_collection"


def test_cli_delete_with_a_tenant_cannot_remove_another_tenants_document(
    gateway: str, tenants: dict[str, Any], data_dir: Path, model_cache: Path
) -> None:
    acme_id = tenants["acme_doc"]["id"]
    result = run_cli(
        "delete", acme_id, "--tenant", "globex",
        data_dir=data_dir, model_cache=model_cache, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert httpx.get(f"{gateway}/v1/documents/{acme_id}", headers=auth(tenants["acme"])).is_success
