"""Which uploads are images of an accepted format, judged from the extension and the first bytes.

This is the cheap check on the request path; full decoding happens in the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from server.errors import UnsupportedImage


@dataclass(frozen=True)
class ImageFormat:
    name: str
    offset: int
    magic: bytes

    def matches(self, head: bytes) -> bool:
        return head[self.offset : self.offset + len(self.magic)] == self.magic


JPEG = ImageFormat("JPEG", 0, b"\xff\xd8\xff")
PNG = ImageFormat("PNG", 0, b"\x89PNG\r\n\x1a\n")
BMP = ImageFormat("BMP", 0, b"BM")
DICOM = ImageFormat("DICOM", 128, b"DICM")  # after the 128-byte preamble (PS3.10 §7.1)

FORMATS_BY_EXTENSION = {".jpg": JPEG, ".jpeg": JPEG, ".png": PNG, ".bmp": BMP, ".dcm": DICOM}
ALLOWED_EXTENSIONS = tuple(FORMATS_BY_EXTENSION)
# Enough leading bytes to decide for every format above.
SNIFF_BYTES = max(fmt.offset + len(fmt.magic) for fmt in FORMATS_BY_EXTENSION.values())


def extension_of(filename: str) -> str:
    """The lowercase extension if it is an accepted one; `UnsupportedImage` otherwise."""
    extension = PurePath(filename.replace("\\", "/")).suffix.lower()
    if extension not in FORMATS_BY_EXTENSION:
        shown = extension or "(none)"
        raise UnsupportedImage(f"extension {shown} is not accepted; allowed: {', '.join(ALLOWED_EXTENSIONS)}")
    return extension


def check_content(extension: str, head: bytes) -> None:
    """Refuse an upload whose first bytes are not the format its extension names."""
    if not head:
        raise UnsupportedImage("the image is empty")
    expected = FORMATS_BY_EXTENSION[extension]
    if not expected.matches(head):
        raise UnsupportedImage(f"the content is not a {expected.name} file as its extension {extension} says")
