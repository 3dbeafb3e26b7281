"""Reading multipart/form-data bodies (uploads) within the portal's limits, saying which limit
a refused body met: the file's size, the form's text fields, or the number of parts.

Werkzeug's sans-IO decoder splits the body into parts; a file part goes, chunk by chunk, to a
stream the caller chooses, and only text fields are held in memory. Werkzeug's own
`max_form_memory_size` is deliberately not handed to the decoder: the decoder compares it with
its read buffer, file data included, and the buffer holds a whole read (64 KiB) plus whatever
the previous read ended with that could begin a boundary (a CR or LF in its last ~70 bytes).
With a limit near the read size, a file of any size was refused as "too large" whenever one of
its reads ended that way (17 of 20 random 300 KB files). Here the text-field limit counts text
fields only, and the buffer check applies only while a part's headers are being read.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from flask import Flask, Request, current_app
from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
    State,
)
from werkzeug.wsgi import get_input_stream

from portal.errors import FieldsTooLarge, FileTooLarge, TooManyParts, megabytes

READ_SIZE = 64 * 1024

StreamFactory = t.Callable[..., t.IO[bytes]]


@dataclass(frozen=True)
class Limits:
    file_bytes: int  # each file
    body_bytes: int  # the whole request body (MAX_CONTENT_LENGTH)
    fields_bytes: int  # the text fields together (MAX_FORM_MEMORY_SIZE)
    parts: int  # text fields and files (MAX_FORM_PARTS)

    @classmethod
    def from_app(cls, app: Flask | None = None) -> Limits:
        config = (app or current_app).config
        return cls(
            file_bytes=int(config["PORTAL"]["MAX_UPLOAD_MB"]) * 1024 * 1024,
            body_bytes=int(config["MAX_CONTENT_LENGTH"]),
            fields_bytes=int(config["MAX_FORM_MEMORY_SIZE"]),
            parts=int(config["MAX_FORM_PARTS"]),
        )


def body_too_large(limits: Limits, content_length: int | None) -> FileTooLarge:
    """The refusal of a body over MAX_CONTENT_LENGTH: the form around a file is small (see
    MAX_FORM_MEMORY_SIZE), so a body this large is a file over its limit."""
    if content_length is None:
        return FileTooLarge.over(limits.file_bytes)
    return FileTooLarge(
        _(
            "The upload is %(content_length)s MB, larger than the %(file_bytes)s MB limit "
            "for a file. Make it smaller (for example export a compressed PDF) and upload it "
            "again.",
            content_length=megabytes(content_length),
            file_bytes=megabytes(limits.file_bytes),
        )
    )


def read_form(
    stream: t.IO[bytes],
    boundary: bytes,
    content_length: int | None,
    stream_factory: StreamFactory,
    limits: Limits,
) -> tuple[MultiDict[str, str], MultiDict[str, FileStorage]]:
    """Parse a multipart body from a stream already limited to `limits.body_bytes`.

    Raises FileTooLarge, FieldsTooLarge or TooManyParts (HTTP 413, with a message a person can
    read), and ValueError when the body is not valid multipart.
    """
    if content_length is not None and content_length > limits.body_bytes:
        raise body_too_large(limits, content_length)
    if not boundary:
        raise ValueError("Missing boundary")
    decoder = MultipartDecoder(boundary)
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, FileStorage]] = []
    fields_bytes = 0
    parts = 0
    part: Field | File | None = None
    text: list[bytes] = []
    container: t.IO[bytes] | None = None
    file_bytes = 0

    def too_many_parts() -> TooManyParts:
        return TooManyParts(
            _(
                "The form has more than %(parts)s parts (fields and files), more than any page "
                "of the portal sends. Reload the page and send it again.",
                parts=limits.parts,
            )
        )

    def fields_too_large() -> FieldsTooLarge:
        return FieldsTooLarge(
            _(
                "The form's text fields are larger than %(kilobytes)s KB together (the file is "
                "not counted). Shorten what was typed, or reload the page and send it again.",
                kilobytes=limits.fields_bytes // 1024,
            )
        )

    try:
        while True:
            data = stream.read(READ_SIZE)
            decoder.receive_data(data or None)
            event = decoder.next_event()
            while not isinstance(event, (Epilogue, NeedData)):
                if isinstance(event, (Field, File)):
                    parts += 1
                    if parts > limits.parts:
                        raise too_many_parts()
                    part = event
                    if isinstance(event, File):
                        file_bytes = 0
                        container = stream_factory(
                            total_content_length=content_length,
                            content_type=event.headers.get("content-type"),
                            filename=event.filename,
                            content_length=0,
                        )
                    else:
                        text = []
                elif isinstance(event, Data) and part is not None:
                    if isinstance(part, File):
                        assert container is not None
                        file_bytes += len(event.data)
                        if file_bytes > limits.file_bytes:
                            raise FileTooLarge.over(limits.file_bytes, part.filename)
                        container.write(event.data)
                        if not event.more_data:
                            container.seek(0)
                            files.append(
                                (
                                    part.name,
                                    FileStorage(
                                        container, part.filename, part.name, headers=part.headers
                                    ),
                                )
                            )
                    else:
                        fields_bytes += len(event.data)
                        if fields_bytes > limits.fields_bytes:
                            raise fields_too_large()
                        text.append(event.data)
                        if not event.more_data:
                            fields.append((part.name, b"".join(text).decode("utf-8", "replace")))
                event = decoder.next_event()
            # While a part's headers (or the preamble) are read, the decoder's buffer grows with
            # them: they count as text.
            if decoder.state in (State.PREAMBLE, State.PART) and (
                len(decoder.buffer) > limits.fields_bytes
            ):
                raise fields_too_large()
            if not data:
                break
    except RequestEntityTooLarge:
        # The limited stream: more bytes arrived than MAX_CONTENT_LENGTH allows.
        raise body_too_large(limits, content_length) from None
    return MultiDict(fields), MultiDict(files)


def read_request_form(
    request: Request, stream_factory: StreamFactory
) -> tuple[MultiDict[str, str], MultiDict[str, FileStorage]]:
    """The text fields and files of `request`'s multipart body, each file written to a stream
    from `stream_factory` as it arrives. Raises as `read_form` does."""
    limits = Limits.from_app()
    if request.mimetype != "multipart/form-data":  # a form without a file input
        return MultiDict(request.form), MultiDict()
    if request.content_length is not None and request.content_length > limits.body_bytes:
        raise body_too_large(limits, request.content_length)
    stream = get_input_stream(request.environ, max_content_length=limits.body_bytes)
    boundary = request.mimetype_params.get("boundary", "").encode("ascii", "replace")
    return read_form(stream, boundary, request.content_length, stream_factory, limits)


class PortalFormDataParser(FormDataParser):
    """Werkzeug's form parser, with multipart bodies read by `read_form` (so every form of the
    portal, the CSV import included, meets the same limits and says which one it met)."""

    def parse(
        self,
        stream: t.IO[bytes],
        mimetype: str,
        content_length: int | None,
        options: dict[str, str] | None = None,
    ) -> tuple[t.IO[bytes], MultiDict[str, t.Any], MultiDict[str, t.Any]]:
        if mimetype != "multipart/form-data":
            return super().parse(stream, mimetype, content_length, options)
        boundary = (options or {}).get("boundary", "").encode("ascii", "replace")
        try:
            form, files = read_form(
                stream, boundary, content_length, self.stream_factory, Limits.from_app()
            )
        except ValueError:
            if not self.silent:
                raise
            return stream, self.cls(), self.cls()
        return stream, form, files


class PortalRequest(Request):
    form_data_parser_class = PortalFormDataParser


def init_app(app: Flask) -> None:
    app.request_class = PortalRequest
