"""Image files: cheap load-time checks and the one image decoder of the project (OpenCV, BGR uint8).

Orientation rule (every reader in rsn_tf goes through :func:`read_image`):

- **Training and evaluation use the stored pixel orientation** and ignore an EXIF ``Orientation`` tag.
  COCO and MPII annotations are in the stored orientation (the annotation tools of both datasets read
  raw pixels), so applying the tag would rotate an image away from its keypoints.
- **``rsn infer`` applies the EXIF tag by default** (``orientation="exif"``): a phone photo taken upright is
  often stored sideways with a tag, every viewer shows it upright, and a pose model only works on
  upright people. Its ``poses.json`` then gives keypoints in the upright (displayed) frame and says so
  per image (``"orientation"``); ``rsn infer --orientation stored`` keeps the stored frame.
"""
from __future__ import annotations

import os
from typing import Literal

import cv2
import numpy as np

# Leading bytes of the formats OpenCV reads that datasets use.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")

Orientation = Literal["stored", "exif"]
#: EXIF orientation value -> what a viewer does to the stored pixels to show them upright.
EXIF_ORIENTATIONS = {1: "none", 2: "mirror left-right", 3: "rotate 180", 4: "mirror top-bottom",
                     5: "transpose", 6: "rotate 90 clockwise", 7: "transverse", 8: "rotate 90 counter-clockwise"}


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
    except IsADirectoryError:
        return "a folder, not an image file"
    except OSError as e:
        return f"cannot open ({e.strerror or e})"
    if not head:
        return "empty file"
    if not head.startswith(_MAGIC):
        return "not a JPEG/PNG/BMP/TIFF/WebP file (unknown header)"
    return None


def exif_orientation(path: str) -> int:
    """The EXIF ``Orientation`` tag of ``path`` (1..8; 1 = upright or no tag). Reads the header only."""
    try:
        from PIL import Image
    except ImportError:  # Pillow comes with matplotlib, a dependency; without it no tag can be read
        return 1
    try:
        with Image.open(path) as im:
            value = int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001  (a file PIL cannot parse has no tag we could honour)
        return 1
    return value if value in EXIF_ORIENTATIONS else 1


def apply_exif_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Stored pixels [H, W, C] -> the upright picture a viewer shows for EXIF ``orientation`` (1..8)."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops.get(int(orientation), ops[1])(image))


def read_image(path: str, orientation: Orientation = "stored") -> np.ndarray:
    """Decode ``path`` to [H, W, 3] uint8 **BGR** (OpenCV's order).

    orientation: ``"stored"`` (default; the pixels as stored, EXIF tag ignored, as datasets are annotated)
    or ``"exif"`` (rotated/mirrored as the EXIF tag says, as a viewer shows it). See the module docstring.
    Raises ``FileNotFoundError`` or ``ValueError`` naming the file when it cannot be read or decoded.
    """
    if orientation not in ("stored", "exif"):
        raise ValueError(f"orientation must be 'stored' or 'exif' (got {orientation!r})")
    if not os.path.exists(path):
        raise FileNotFoundError(f"image not found: {path}")
    problem = check_image_file(path)
    if problem is not None and problem != "not a JPEG/PNG/BMP/TIFF/WebP file (unknown header)":
        raise ValueError(f"{path}: {problem}")
    data = np.fromfile(path, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if image is None:
        raise ValueError(f"{path}: cannot decode image (corrupt or not an image)")
    if orientation == "exif":
        image = apply_exif_orientation(image, exif_orientation(path))
    return image


def try_read_image(path: str, orientation: Orientation = "stored") -> tuple[np.ndarray | None, str | None]:
    """:func:`read_image` that reports instead of raising: ``(image, None)`` or ``(None, why)``."""
    try:
        return read_image(path, orientation), None
    except (OSError, ValueError) as e:
        msg = str(e)
        return None, msg[len(path) + 2:] if msg.startswith(f"{path}: ") else msg
