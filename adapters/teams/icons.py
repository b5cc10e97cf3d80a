"""A tiny pure-Python PNG writer and reader (zlib + struct), for the Teams app icons.

Teams wants a 192x192 full-colour icon and a 32x32 outline icon that is white on a
transparent background. `python -m adapters.teams.icons` redraws config/teams/*.png.
"""

from __future__ import annotations

import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RGBA = tuple[int, int, int, int]


class IconError(ValueError):
    """An icon that is not a PNG Teams accepts; the message says what is wrong."""


@dataclass(frozen=True)
class PngInfo:
    """The header of a PNG file."""

    width: int
    height: int
    bit_depth: int
    color_type: int  # 6 = RGBA, 2 = RGB, 3 = palette, 4 = grey + alpha, 0 = grey
    interlace: int

    @property
    def has_alpha(self) -> bool:
        return self.color_type in (4, 6)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(pixels: list[list[RGBA]]) -> bytes:
    """8-bit RGBA PNG bytes from rows of (r, g, b, a) tuples."""
    height = len(pixels)
    width = len(pixels[0]) if height else 0
    if not width or any(len(row) != width for row in pixels):
        raise ValueError("encode_png(): every row must have the same, non-zero width")
    raw = b"".join(b"\x00" + bytes(v for px in row for v in px) for row in pixels)  # filter 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def _chunks(data: bytes, name: str) -> list[tuple[bytes, bytes]]:
    if not data.startswith(PNG_SIGNATURE):
        raise IconError(f"{name} is not a PNG file")
    pos, out = len(PNG_SIGNATURE), []
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise IconError(f"{name} is truncated")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise IconError(f"{name} is corrupt (bad {kind.decode('latin-1')} checksum)")
        out.append((kind, body))
        pos += 12 + length
        if kind == b"IEND":
            return out
    raise IconError(f"{name} has no IEND chunk")


def png_info(data: bytes, name: str = "the icon") -> PngInfo:
    """Width, height and colour type of a PNG, checking its structure and checksums."""
    chunks = _chunks(data, name)
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise IconError(f"{name} has no valid IHDR header")
    width, height, depth, color, _comp, _filter, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    return PngInfo(width, height, depth, color, interlace)


def decode_rgba(data: bytes, name: str = "the icon") -> list[list[RGBA]]:
    """Pixels of an 8-bit, non-interlaced RGBA PNG (what `encode_png` writes)."""
    info = png_info(data, name)
    if (info.bit_depth, info.color_type, info.interlace) != (8, 6, 0):
        raise IconError(f"{name}: only 8-bit non-interlaced RGBA can be inspected")
    raw = zlib.decompress(b"".join(body for kind, body in _chunks(data, name) if kind == b"IDAT"))
    stride = info.width * 4
    rows: list[list[RGBA]] = []
    prev = bytearray(stride)
    pos = 0
    for _ in range(info.height):
        kind, line = raw[pos], bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        for i in range(stride):
            left = line[i - 4] if i >= 4 else 0
            up = prev[i]
            up_left = prev[i - 4] if i >= 4 else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                line[i] = (line[i] + pred) & 0xFF
        rows.append([tuple(line[i:i + 4]) for i in range(0, stride, 4)])  # type: ignore[misc]
        prev = line
    return rows


# -- drawing -----------------------------------------------------------------------------------

ACCENT = (46, 125, 107)  # #2E7D6B, the manifest's accentColor
WHITE = (255, 255, 255)


def _inside_bubble(x: float, y: float, size: float) -> bool:
    """A speech bubble: a rounded rectangle with a tail at the lower left."""
    left, top, right, bottom, radius = 0.16 * size, 0.20 * size, 0.84 * size, 0.66 * size, 0.12 * size
    cx = min(max(x, left + radius), right - radius)
    cy = min(max(y, top + radius), bottom - radius)
    if left <= x <= right and top <= y <= bottom and (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2:
        return True
    # tail: triangle (0.30,0.64) (0.46,0.64) (0.26,0.82)
    ax, ay, bx, by, qx, qy = 0.30 * size, 0.64 * size, 0.46 * size, 0.64 * size, 0.26 * size, 0.82 * size
    d1 = (x - bx) * (ay - by) - (ax - bx) * (y - by)
    d2 = (x - qx) * (by - qy) - (bx - qx) * (y - qy)
    d3 = (x - ax) * (qy - ay) - (qx - ax) * (y - ay)
    return not ((d1 < 0 or d2 < 0 or d3 < 0) and (d1 > 0 or d2 > 0 or d3 > 0))


def _coverage(x: int, y: int, size: int, inside) -> float:
    # 4x4 supersampling: smooth edges without an imaging library.
    hits = sum(inside(x + (i + 0.5) / 4, y + (j + 0.5) / 4, size) for i in range(4) for j in range(4))
    return hits / 16


def color_icon(size: int = 192) -> list[list[RGBA]]:
    """The full-colour icon: a white speech bubble with three dots on the accent colour."""
    rows = []
    for y in range(size):
        row = []
        for x in range(size):
            c = _coverage(x, y, size, _inside_bubble)
            dot = _coverage(x, y, size, lambda px, py, s: any(
                (px - cx * s) ** 2 + (py - 0.43 * s) ** 2 <= (0.045 * s) ** 2 for cx in (0.34, 0.50, 0.66)))
            c = max(0.0, c - dot)
            r, g, b = (round(a * (1 - c) + w * c) for a, w in zip(ACCENT, WHITE))
            row.append((r, g, b, 255))
        rows.append(row)
    return rows


def outline_icon(size: int = 32) -> list[list[RGBA]]:
    """The outline icon: the bubble's outline, white on transparent, as Teams requires."""
    def ring(px: float, py: float, s: float) -> bool:
        if not _inside_bubble(px, py, s):
            return False
        # inside the bubble but not inside a shrunken copy of it
        shrink = 0.10
        qx = (px - 0.5 * s) / (1 - 2 * shrink) + 0.5 * s
        qy = (py - 0.45 * s) / (1 - 2 * shrink) + 0.45 * s
        return not _inside_bubble(qx, qy, s)

    return [[(255, 255, 255, round(255 * _coverage(x, y, size, ring))) for x in range(size)] for y in range(size)]


def write_icons(folder: Path) -> tuple[Path, Path]:
    """Write color.png (192x192) and outline.png (32x32) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    color, outline = folder / "color.png", folder / "outline.png"
    color.write_bytes(encode_png(color_icon()))
    outline.write_bytes(encode_png(outline_icon()))
    return color, outline


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "config" / "teams"
    for path in write_icons(target):
        print(path)
