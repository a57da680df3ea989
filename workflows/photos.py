"""Photos for cases: checked, EXIF stripped (location and device data leave with it), turned
upright, thumbnailed, stored content-addressed under the data folder."""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from gis.errors import Invalid

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000
ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
THUMB_SIZE = (320, 320)
PHOTO_KINDS = ("report", "before", "after", "evidence")


@dataclass(frozen=True)
class StoredPhoto:
    kind: str
    path: str            # relative to the data folder
    thumb_path: str
    width: int
    height: int
    bytes: int
    sha256: str


def store_photo(data_dir: Path, raw: bytes, kind: str, filename: str = "photo") -> StoredPhoto:
    if kind not in PHOTO_KINDS:
        raise Invalid(f"photo kind {kind!r} is not one of {', '.join(PHOTO_KINDS)}")
    if not raw:
        raise Invalid(f"{filename}: the file is empty")
    if len(raw) > MAX_BYTES:
        raise Invalid(f"{filename}: {len(raw) / 1e6:.1f} MB is larger than the {MAX_BYTES // 2**20} MB allowed")
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            fmt = probe.format
            if fmt not in ALLOWED_FORMATS:
                raise Invalid(f"{filename}: {fmt or 'this'} images are not accepted; send JPEG, PNG or WebP")
            if probe.width * probe.height > MAX_PIXELS:
                raise Invalid(f"{filename}: {probe.width}×{probe.height} pixels is too large")
            probe.verify()
        with Image.open(io.BytesIO(raw)) as img:
            img = ImageOps.exif_transpose(img)          # upright, then saved without EXIF
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise Invalid(f"{filename}: not a readable image ({e.__class__.__name__})") from None
    clean = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB").save(clean, "JPEG", quality=88, optimize=True)
    else:
        img.save(clean, fmt)
    body = clean.getvalue()
    digest = hashlib.sha256(body).hexdigest()
    ext = ALLOWED_FORMATS[fmt]
    rel = Path("photos") / digest[:2] / f"{digest}.{ext}"
    thumb_rel = Path("photos") / digest[:2] / f"{digest}.thumb.jpg"
    _write_once(data_dir / rel, body)
    thumb = img.convert("RGB")
    thumb.thumbnail(THUMB_SIZE)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=80)
    _write_once(data_dir / thumb_rel, buf.getvalue())
    return StoredPhoto(kind, str(rel), str(thumb_rel), img.width, img.height, len(body), digest)


def _write_once(path: Path, body: bytes) -> None:
    # Content-addressed: the same bytes always land at the same name, so a retry is harmless.
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(body)
    tmp.replace(path)
