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

from fastapi import Request, Security
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import SecretStr

from server.errors import Unauthorized

OPEN_TENANT = ""


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


class TenantKeyScheme(SecurityBase):
    """The API key scheme: declared in the OpenAPI description as `bearerAuth`, and, as a
    dependency, the request's tenant.

    One dependency rather than FastAPI's `HTTPBearer` and a function reading its result: every
    level of dependency solving costs microseconds on every upload. It never refuses a request
    with FastAPI's error body: a missing or unknown key is our 401/10005.
    """

    def __init__(self) -> None:
        self.model = HTTPBearerModel(
            description=(
                "The tenant's API key as `Authorization: Bearer <key>`. Required when API keys are configured "
                "(`security.api_keys`); otherwise the API is open. A missing or unknown key is 401/10005."
            )
        )
        self.scheme_name = "bearerAuth"

    async def __call__(self, request: Request) -> str:
        """The tenant of the request's API key; 401/10005 when keys are configured and none matches."""
        keys: ApiKeys = request.app.state.api_keys
        if not keys.enabled:
            return OPEN_TENANT
        scheme, credentials = get_authorization_scheme_param(request.headers.get("Authorization"))
        token = credentials.strip() if scheme.lower() == "bearer" else ""
        if not token:
            raise Unauthorized("send the API key as 'Authorization: Bearer <key>'")
        tenant = keys.tenant_for(token)
        if tenant is None:
            raise Unauthorized("unknown API key")
        request.state.tenant = tenant  # for the access log
        return tenant


TenantDep = Annotated[str, Security(TenantKeyScheme())]


def task_ref(tenant: str, task_id: str) -> str:
    """The service's internal name of a tenant's task: two tenants' equal taskIds never meet."""
    return f"{tenant}:{task_id}" if tenant else task_id
