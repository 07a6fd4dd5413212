"""Images in and out: whatever a user hands us → an RGB PIL image (or one `BadImage` sentence)
→ the normalised pixels a vision encoder reads, and back to the picture the model saw."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from vlp.errors import BadImage
from vlp.limits import MAX_PIXELS
from vlp.vision import VisionConfig, normalise

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def load_image(image) -> Image.Image:
    """Return `image` as an RGB PIL image, EXIF-rotated, transparency flattened onto white.

    Args:
        image: a PIL image, a path (str or Path), raw bytes, or an array (H, W), (H, W, 3) or
            (H, W, 4) of uint8, uint16 or floats in [0, 1].
    Raises:
        BadImage: with one sentence saying what is wrong with the input.
    """
    if isinstance(image, Image.Image):
        img = image
    elif isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise BadImage(f"No image file at {path}.")
        img = _open(path, str(path))
    elif isinstance(image, (bytes, bytearray)):
        img = _open(io.BytesIO(image), "the uploaded data")
    elif isinstance(image, np.ndarray) or hasattr(image, "__array__"):
        img = _from_array(np.asarray(image))
    else:
        raise BadImage(f"Expected an image, a path or an array, got {type(image).__name__}.")
    return _to_rgb(img)


def image_size(path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header: nothing is decoded.

    Raises:
        BadImage: when the file is missing, not a readable image, or over `MAX_PIXELS`.
    """
    path = Path(path)
    if not path.is_file():
        raise BadImage(f"No image file at {path}.")
    with _open(path, str(path), decode=False) as img:
        return img.size


def _open(source, name: str, decode: bool = True) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our own limit, read from the header below, is lower than PIL's bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source)
        _check_size(img.width, img.height)  # before any pixel is decoded
        if decode:
            img.load()
    except BadImage:
        raise
    except Image.DecompressionBombError:
        raise BadImage(f"{name} is too large (more than {MAX_PIXELS // 1_000_000} megapixels).") from None
    except UnidentifiedImageError:  # said in words: a person reads it, not an exception's class name
        raise BadImage(f"{name} is not a readable image (not in an image format vlp reads).") from None
    except (OSError, SyntaxError):
        raise BadImage(f"{name} is not a readable image (damaged or cut short).") from None
    return img


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise BadImage("The image is empty (zero width or height).")
    if width * height > MAX_PIXELS:
        raise BadImage(
            f"The image is too large: {width}x{height} is more than {MAX_PIXELS // 1_000_000} megapixels."
        )


def _from_array(a: np.ndarray) -> Image.Image:
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)  # (C, H, W) -> (H, W, C)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise BadImage(f"An image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {a.shape}.")
    _check_size(a.shape[1], a.shape[0])
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating) or a.dtype == bool:
        a = np.nan_to_num(a.astype(np.float32))
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise BadImage(f"Unsupported image array type {a.dtype}; use uint8, uint16 or floats in [0, 1].")
    return Image.fromarray(a)


def _to_rgb(img: Image.Image) -> Image.Image:
    _check_size(img.width, img.height)
    img = ImageOps.exif_transpose(img)
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        img = Image.fromarray((a / top * 255.0 + 0.5).astype(np.uint8))
    elif img.mode == "F":
        a = np.nan_to_num(np.asarray(img, dtype=np.float32))
        img = Image.fromarray((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")


def preprocess(images, config: VisionConfig) -> torch.Tensor:
    """PIL images / paths / arrays → a normalised float batch (B, 3, image_size, image_size)."""
    side = config.image_size
    arrays = []
    for image in images:
        img = load_image(image)
        if config.resize == "crop":
            # as torchvision's Resize(side) + CenterCrop(side), which CLIP was trained with:
            # the long side truncated, the crop offset rounded
            w, h = img.size
            img = img.resize((side, int(side * h / w)) if w <= h else (int(side * w / h), side), Image.BICUBIC)
            left, top = round((img.width - side) / 2), round((img.height - side) / 2)
            img = img.crop((left, top, left + side, top + side))
        elif img.size != (side, side):
            img = img.resize((side, side), Image.BICUBIC)
        arrays.append(np.asarray(img, dtype=np.uint8))
    return normalise(torch.from_numpy(np.stack(arrays)), config)


def pixels_to_image(pixels: torch.Tensor, mean, std) -> Image.Image:
    """One preprocessed image (3, H, W) → the RGB PIL image the model saw (normalisation undone)."""
    mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    x = (pixels.detach().float().cpu() * std + mean).clamp(0, 1)
    return Image.fromarray((x.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
