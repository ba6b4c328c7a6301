"""API keys in the X-API-Key header: client keys for /v1, admin keys for /v1/admin (admins may call everything).

With no keys configured the service runs in open mode (see Settings.open_mode) and every caller is 'anonymous'.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from service.settings import Settings, parse_keys

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="a client or admin key")
ANONYMOUS = "anonymous"


class KeyRing:
    def __init__(self, settings: Settings):
        self.open = settings.open_mode
        self.admins = parse_keys(settings.admin_keys)
        self.clients = {**parse_keys(settings.api_keys), **self.admins}

    def client(self, key: str | None) -> str | None:
        return ANONYMOUS if self.open else self.clients.get(key or "")

    def admin(self, key: str | None) -> str | None:
        return ANONYMOUS if self.open else self.admins.get(key or "")


def _unauthorised() -> HTTPException:
    return HTTPException(status_code=401, detail="missing or invalid X-API-Key header",
                         headers={"WWW-Authenticate": "ApiKey"})


async def require_client(request: Request, key: str | None = Security(api_key_header)) -> str:
    """The caller's key name (recorded in the access log); 401 without a valid key.

    async on purpose, like require_admin: FastAPI runs a plain `def` dependency in its thread pool, a thread hop
    per request that cost about 8% of the event loop's time under load."""
    name = request.app.state.service.keys.client(key)
    if name is None:
        raise _unauthorised()
    request.state.client = name
    return name


async def require_admin(request: Request, key: str | None = Security(api_key_header)) -> str:
    keys = request.app.state.service.keys
    name = keys.admin(key)
    if name is None:
        if keys.client(key) is not None:
            raise HTTPException(status_code=403, detail="this key may not call admin endpoints")
        raise _unauthorised()
    request.state.client = name
    return name
