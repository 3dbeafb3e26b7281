"""JSON answers (`jsonify`, the API's bodies) encoded by orjson, as the sync pages are.

The text means the same as Flask's own encoder gives: keys sorted, compact, a final newline;
dates, times, decimals, dataclasses and `__html__` objects through Flask's `default`. Only
non-ASCII characters differ: sent as UTF-8 instead of `\\u` escapes (both are valid JSON).
Anything orjson refuses (an integer past 64 bits, keys that are not strings) goes to Flask's
encoder, and so does debug mode's indented output. `dumps` (the session cookie, `tojson` in
templates) is Flask's, unchanged.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.json.provider import DefaultJSONProvider
from werkzeug.sansio.response import Response as BaseResponse


class OrjsonProvider(DefaultJSONProvider):
    def response(self, *args: Any, **kwargs: Any) -> BaseResponse:
        if (self.compact is None and self._app.debug) or self.compact is False:
            return super().response(*args, **kwargs)
        import orjson  # imported when first needed: a desktop start does without it

        value = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(
                value,
                default=self.default,
                option=orjson.OPT_SORT_KEYS
                | orjson.OPT_PASSTHROUGH_DATETIME
                | orjson.OPT_PASSTHROUGH_DATACLASS
                | orjson.OPT_APPEND_NEWLINE,
            )
        except orjson.JSONEncodeError:
            return super().response(*args, **kwargs)
        return Response(body, mimetype=self.mimetype)
