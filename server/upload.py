"""Streaming reader for the analyze form: text fields into memory (bounded), the image to storage.

The body is parsed as it arrives. The image is checked against its extension from its first bytes,
then written to a staged file in bounded slices, so an upload of any size costs the API at most
`FLUSH_BYTES` of memory. Nothing becomes visible in storage until the caller commits, and a commit
first checks the whole file's header and end (`server.imagecheck`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

from server.core.storage import ImageStorage, StagedImage
from server.errors import RequestInvalid, StorageUnavailable, UploadTooLarge
from server.imagecheck import inspect_image, inspect_image_bytes
from server.imageformat import SNIFF_BYTES, check_content, extension_of

logger = logging.getLogger(__name__)

IMAGE_FIELD = "image"
FLUSH_BYTES = 1024 * 1024
MAX_TEXT_FIELDS = 16
MAX_TEXT_FIELD_BYTES = 8 * 1024
# Room for the text fields and multipart framing on top of the image itself.
FORM_OVERHEAD_BYTES = MAX_TEXT_FIELDS * MAX_TEXT_FIELD_BYTES


@dataclass
class UploadedImage:
    """An image received in full but not yet committed to storage."""

    storage: ImageStorage
    key: str
    extension: str
    filename: str
    size: int = 0
    # Received slices not yet written; kept as views of the received chunks, never copied.
    _pending: list[memoryview] = field(default_factory=list)
    _pending_bytes: int = 0
    _staged: StagedImage | None = None
    _committed: bool = False

    def keep(self, data: memoryview) -> bool:
        """Hold `data` for the next flush; True once enough is held that it should be flushed."""
        self._pending.append(data)
        self._pending_bytes += len(data)
        self.size += len(data)
        return self._pending_bytes >= FLUSH_BYTES

    def flush(self) -> None:
        """Write the buffered bytes to the staged file (blocking: call from a worker thread)."""
        if self._staged is None:
            self._staged = self.storage.stage(self.key)
        for piece in self._pending:
            self._staged.write(piece)
        self._pending.clear()
        self._pending_bytes = 0

    def commit(self) -> None:
        """Check the whole image (`UnsupportedImage`), then make it readable under its key (blocking)."""
        # Judged before it is visible under its key, so a refused image never appears there and the
        # caller's discard() removes what was written. Header-only, as this runs once per request.
        if self._staged is None:  # never flushed: all of it is still in memory, checked there
            whole = b"".join(self._pending)
            inspect_image_bytes(whole, self.extension)
            self._pending = [memoryview(whole)]  # then written in one piece
            self.flush()
        else:
            self.flush()
            self._staged.flush()
            inspect_image(self._staged.path, self.extension)
        if self._staged is not None:  # always true after flush(); says so to the type checker
            self._staged.commit()
        self._committed = True

    def discard(self) -> None:
        """Remove every trace of the image, committed or not (blocking); never raises for the store.

        It runs while another error is on its way to the client: that error, not a failing
        delete, is what the client must see.
        """
        self._pending.clear()
        try:
            if self._committed:
                self.storage.delete(self.key)
            elif self._staged is not None:
                self._staged.discard()
        except OSError as exc:
            logger.warning("could not remove refused upload %s: %s", self.key, exc)


@dataclass
class AnalyzeForm:
    fields: dict[str, str]
    images: list[UploadedImage]

    @property
    def image(self) -> UploadedImage | None:
        return self.images[0] if self.images else None


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    text: bytearray = field(default_factory=bytearray)


class _Events:
    """Collects the parser's synchronous callbacks so they can be handled with awaits between."""

    def __init__(self) -> None:
        # ("headers", {name: value}) | ("data", bytes) | ("end", None), in arrival order.
        self.items: list[tuple[str, Any]] = []
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin,
            "on_part_data": self._part_data,
            "on_part_end": lambda: self.items.append(("end", None)),
            "on_header_field": lambda data, start, end: self._header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": lambda: self.items.append(("headers", self._headers)),
        }

    def _part_begin(self) -> None:
        self._headers = {}

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        # A view, not a copy: the parser hands over immutable chunks that outlive the callback.
        self.items.append(("data", memoryview(data)[start:end]))

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()


class AnalyzeFormReader:
    """Reads one request's form; `before_image` may reject the request before any byte is stored.

    One image by default (analyze); a batch allows up to `max_images`, each a part named `image`,
    told apart by filename, and a larger body and text fields.
    """

    def __init__(
        self,
        storage: ImageStorage,
        max_image_bytes: int,
        before_image: Callable[[dict[str, str]], None] | None = None,
        *,
        max_images: int = 1,
        max_text_bytes: int = MAX_TEXT_FIELD_BYTES,
        body_limit: int | None = None,
    ) -> None:
        self.storage = storage
        self.max_image_bytes = max_image_bytes
        self.before_image = before_image
        self.max_images = max_images
        self.max_text_bytes = max_text_bytes
        self.fields: dict[str, str] = {}
        self.images: list[UploadedImage] = []
        self._current: UploadedImage | None = None  # the image whose part is being read
        self.body_limit = body_limit or max_image_bytes + FORM_OVERHEAD_BYTES
        self._part = _Part()
        self._head = bytearray()
        self._head_checked = False
        self._text_parts = 0
        self._part_open = False

    async def read(self, request: Request) -> AnalyzeForm:
        await self._read_body(request)
        return AnalyzeForm(self.fields, self.images)

    async def _read_body(self, request: Request) -> None:
        events = _Events()
        parser = self._parser(request, events)
        limit = self.body_limit
        received = 0
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:  # a chunked body has no Content-Length to refuse up front
                    raise UploadTooLarge(f"the request body exceeds {limit} bytes")
                parser.write(chunk)
                await self._handle(events)
            parser.finalize()
            await self._handle(events)
            if parser.state != MultipartState.END or self._part_open:
                raise RequestInvalid("the multipart body is truncated (no closing boundary)")
        except MultipartParseError as exc:
            await self._discard()
            raise RequestInvalid(f"malformed multipart body: {exc}") from None
        except OSError as exc:  # the storage directory: full disk, gone mount, no permission
            await self._discard()
            raise StorageUnavailable(exc) from exc
        except BaseException:  # a client that went away included: leave no file behind
            await self._discard()
            raise

    def _parser(self, request: Request, events: _Events) -> MultipartParser:
        content_type, options = parse_options_header(request.headers.get("content-type", ""))
        boundary = options.get(b"boundary")
        if content_type != b"multipart/form-data" or not boundary:
            raise RequestInvalid("the body must be multipart/form-data with a boundary")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.body_limit:
            raise UploadTooLarge(f"the request declares {declared} bytes; the limit is {self.body_limit} bytes")
        # No max_size: past it the parser truncates silently; read() enforces the limit itself.
        return MultipartParser(boundary, events.callbacks())  # type: ignore[arg-type]

    async def _handle(self, events: _Events) -> None:
        for kind, payload in events.items:
            if kind == "headers":
                await self._begin_part(payload)
            elif kind == "data":
                await self._part_data(payload)
            else:
                await self._end_part()
        events.items.clear()

    async def _begin_part(self, headers: dict[bytes, bytes]) -> None:
        _, options = parse_options_header(headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        raw_filename = options.get(b"filename")
        self._part = _Part(
            name=name, filename=None if raw_filename is None else raw_filename.decode("utf-8", "replace")
        )
        self._part_open = True
        self._current = None
        if self._part.filename is None:
            if name == IMAGE_FIELD:
                raise RequestInvalid(f"{IMAGE_FIELD!r} must be a file part with a filename (it was sent as text)")
            self._text_parts += 1
            if self._text_parts > MAX_TEXT_FIELDS:
                raise RequestInvalid(f"too many form fields (at most {MAX_TEXT_FIELDS})")
            return
        if name != IMAGE_FIELD:
            raise RequestInvalid(f"unexpected file field {name!r}; the image goes in {IMAGE_FIELD!r}")
        if len(self.images) >= self.max_images:
            limit = "only one image" if self.max_images == 1 else f"at most {self.max_images} images"
            raise RequestInvalid(f"{limit} per request")
        extension = extension_of(self._part.filename)
        if self.before_image is not None and not self.images:
            self.before_image(self.fields)
        self._current = UploadedImage(self.storage, self.storage.new_key(extension), extension, self._part.filename)
        self.images.append(self._current)
        self._head = bytearray()
        self._head_checked = False

    async def _part_data(self, data: memoryview) -> None:
        if self._part.filename is None:
            self._part.text += data
            if len(self._part.text) > self.max_text_bytes:
                raise RequestInvalid(f"form field {self._part.name!r} is longer than {self.max_text_bytes} bytes")
            return
        image = self._current
        if image is None:  # a file part other than the image was refused when it began
            return
        if image.size + len(data) > self.max_image_bytes:
            raise UploadTooLarge(f"the image exceeds the limit of {self.max_image_bytes} bytes")
        if not self._head_checked:
            self._head += data[: SNIFF_BYTES - len(self._head)]
            if len(self._head) >= SNIFF_BYTES:
                self._check_head(image)
        if image.keep(data):
            await anyio.to_thread.run_sync(image.flush)

    async def _end_part(self) -> None:
        self._part_open = False
        if self._part.filename is None:
            try:
                self.fields.setdefault(self._part.name, self._part.text.decode("utf-8"))
            except UnicodeDecodeError:
                raise RequestInvalid(f"form field {self._part.name!r} is not UTF-8 text") from None
        elif self._current is not None and not self._head_checked:
            self._check_head(self._current)

    def _check_head(self, image: UploadedImage) -> None:
        check_content(image.extension, bytes(self._head))
        self._head_checked = True

    async def _discard(self) -> None:
        for image in self.images:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(image.discard)
