"""Image files: cheap load-time checks and the decoder the input pipeline uses (OpenCV, BGR uint8)."""
from __future__ import annotations

import os

import cv2
import numpy as np

# Leading bytes of the formats OpenCV reads that datasets use.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


def check_image_file(path: str) -> str | None:
    """Why ``path`` cannot be an image (missing, empty, unknown header), or ``None`` if it looks fine.

    Reads 12 bytes only, so it is cheap enough for every image of COCO at load time. A file that
    passes can still be truncated; :func:`read_image` reports that when it is decoded.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except FileNotFoundError:
        return "file not found"
    except OSError as e:
        return f"cannot open ({e.strerror or e})"
    if not head:
        return "empty file"
    if not head.startswith(_MAGIC):
        return "not a JPEG/PNG/BMP/TIFF/WebP file (unknown header)"
    return None


def read_image(path: str) -> np.ndarray:
    """Decode ``path`` to [H, W, 3] uint8 **BGR** (OpenCV's order; EXIF orientation ignored, as COCO's
    annotations are in the stored orientation). Raises ``ValueError`` naming the file if it cannot be decoded."""
    data = np.fromfile(path, np.uint8) if os.path.exists(path) else None
    if data is None:
        raise FileNotFoundError(f"image not found: {path}")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if image is None:
        raise ValueError(f"{path}: cannot decode image (corrupt or not an image)")
    return image
