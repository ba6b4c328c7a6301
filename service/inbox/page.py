"""The inbox web page: a team's queue with buttons to resolve items and correct labels.

The page itself carries no data (it is public, like /docs); its script calls the /v1/inbox API with the key the
agent types in, kept in the browser's localStorage. In open mode no key is needed.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()
PAGE = Path(__file__).parent / "static" / "inbox.html"


@cache
def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


@router.get("/inbox", response_class=HTMLResponse, include_in_schema=False)
async def inbox_page() -> HTMLResponse:
    return HTMLResponse(_page(), headers={"Cache-Control": "no-store",
                                          "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline' "
                                          "'self'; style-src 'unsafe-inline' 'self'"})
