"""API keys: each key is a tenant; a request's tenant decides which tasks it can see.

Keys come from `security.api_keys` (environment only). The presented key is compared with every
configured key in constant time, digests of equal length, without stopping at a match, so
neither the time taken nor an early exit tells an attacker how close a guess was or which
tenant exists. With no keys configured the API is open and every request is the tenant "".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from server.errors import Unauthorized

OPEN_TENANT = ""

# Declares the scheme in the OpenAPI description only: it never refuses a request itself
# (auto_error=False), so a missing or unknown key stays our 401/10005 body from `current_tenant`.
BEARER_SCHEME = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description=(
        "The tenant's API key as `Authorization: Bearer <key>`. Required when API keys are configured "
        "(`security.api_keys`); otherwise the API is open. A missing or unknown key is 401/10005."
    ),
)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class ApiKeys:
    def __init__(self, keys: Mapping[str, SecretStr]) -> None:
        self._digests = [(tenant, _digest(key.get_secret_value())) for tenant, key in keys.items()]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def tenant_for(self, presented: str) -> str | None:
        """The tenant whose key this is, or None."""
        candidate = _digest(presented)
        found = None
        for tenant, digest in self._digests:
            if hmac.compare_digest(candidate, digest):
                found = tenant
        return found


async def current_tenant(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_SCHEME)],
) -> str:
    """The tenant of the request's API key; 401/10005 when keys are configured and none matches."""
    keys: ApiKeys = request.app.state.api_keys
    if not keys.enabled:
        return OPEN_TENANT
    # FastAPI's HTTPBearer has parsed the header: credentials only for the Bearer scheme with a key.
    token = _declared.credentials.strip() if _declared is not None else ""
    if not token:
        raise Unauthorized("send the API key as 'Authorization: Bearer <key>'")
    tenant = keys.tenant_for(token)
    if tenant is None:
        raise Unauthorized("unknown API key")
    request.state.tenant = tenant  # for the access log
    return tenant


TenantDep = Annotated[str, Depends(current_tenant)]


def task_ref(tenant: str, task_id: str) -> str:
    """The service's internal name of a tenant's task: two tenants' equal taskIds never meet."""
    return f"{tenant}:{task_id}" if tenant else task_id
