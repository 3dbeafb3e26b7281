"""Page-numbered lists with links: in the body (`links`) and in an RFC 8288 Link header."""

from __future__ import annotations

import math
from typing import Any

from flask import request, url_for
from sqlalchemy import Select

from portal.database import paginate_one_statement
from portal.extensions import db


def paginate(
    query: Select[Any], args: dict[str, Any], *, one_statement: bool = False
) -> tuple[list[Any], dict[str, Any], str]:
    """(items, page metadata with links, Link header value) for `query` at args' page.
    one_statement: the total comes with the page's rows (portal.database.paginate_one_statement:
    a select of one entity, one row per item)."""
    page, per_page = int(args["page"]), int(args["per_page"])
    if one_statement:
        result = paginate_one_statement(query, page=page, per_page=per_page)
    else:
        result = db.paginate(query, page=page, per_page=per_page, error_out=False, count=True)
    total = int(result.total or 0)
    pages = max(1, math.ceil(total / per_page))

    def link(number: int) -> str:
        values: dict[str, Any] = {
            **(request.view_args or {}),
            **{k: v for k, v in request.args.items() if k not in ("page", "per_page")},
            "page": number,
            "per_page": per_page,
        }
        return url_for(str(request.endpoint), **values)

    links = {
        "self": link(page),
        "first": link(1),
        "last": link(pages),
        "prev": link(page - 1) if 1 < page <= pages else None,
        "next": link(page + 1) if page < pages else None,
    }
    header = ", ".join(f'<{url}>; rel="{rel}"' for rel, url in links.items() if url)
    meta = {"page": page, "per_page": per_page, "total": total, "pages": pages, "links": links}
    return list(result.items), meta, header


def page_answer(
    query: Select[Any], args: dict[str, Any]
) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A list view's answer: the page's rows with the page metadata, and the Link header."""
    items, meta, link = paginate(query, args)
    return {**meta, "items": items}, 200, {"Link": link}
