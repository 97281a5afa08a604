"""Tenants share one store; each sees only collections in its own namespace.

A tenant's collection `faq` is stored as `acme:faq`. Collection names a client may send
cannot contain `:`, so no name one tenant can choose reaches another tenant's namespace.
The default tenant (what `grounded ingest` and `--no-auth` use) keeps plain names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from grounded.settings import TierSettings

DEFAULT_TENANT = "default"
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_SEPARATOR = ":"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the key's tenant and tier (key_id None when auth is off)."""

    tenant: str
    tier: TierSettings
    key_id: str | None = None

    def collection(self, name: str) -> str:
        return stored_collection(self.tenant, name)

    def owns(self, stored: str) -> bool:
        return visible_collection(self.tenant, stored) is not None

    def visible(self, stored: str) -> str:
        """The name this tenant knows a stored collection by (call only when it owns it)."""
        return visible_collection(self.tenant, stored) or stored


def stored_collection(tenant: str, collection: str) -> str:
    if _SEPARATOR in collection:
        raise ValueError(f"collection names cannot contain {_SEPARATOR!r}")
    return collection if tenant == DEFAULT_TENANT else f"{tenant}{_SEPARATOR}{collection}"


def visible_collection(tenant: str, stored: str) -> str | None:
    """The tenant's own name for a stored collection, or None if it is another tenant's."""
    owner, sep, name = stored.partition(_SEPARATOR)
    if not sep:
        return stored if tenant == DEFAULT_TENANT else None
    return name if owner == tenant else None


def plain_collection(name: str) -> str:
    """A configured default may name a tenant (`acme:faq`); requests use the name part."""
    return name.rpartition(_SEPARATOR)[2]
