"""Drawing Shapes World scenes: object colours, anti-aliased rendering, images for a search index."""
from __future__ import annotations

import hashlib
import json

import numpy as np
from PIL import Image, ImageDraw

from vlp.errors import BadScene
from vlp.world.language import caption
from vlp.world.scene import SHAPES, Scene, is_int

COLOR_RGB = {
    "red": (215, 45, 45),
    "green": (45, 160, 70),
    "blue": (45, 85, 215),
    "yellow": (230, 195, 35),
    "purple": (135, 65, 175),
    "orange": (240, 130, 35),
}
JITTER = 12  # per-channel colour jitter, ± this much
SUPERSAMPLE = 4  # draw at 4x and average down: anti-aliasing


def object_colors(scene: Scene) -> list[tuple[int, int, int]]:
    """Each object's jittered RGB. The jitter comes from a hash of the scene's objects and
    background (not its pixel size), so a scene always draws the same, at any size."""
    key = json.dumps({"background": list(scene.background), "objects": [o.to_dict() for o in scene.objects]},
                     sort_keys=True).encode()
    digest = hashlib.blake2b(key, digest_size=64).digest()  # 3 bytes per object, up to 21 objects
    colors = []
    for k, obj in enumerate(scene.objects):
        jitter = [digest[(3 * k + c) % len(digest)] % (2 * JITTER + 1) - JITTER for c in range(3)]
        colors.append(tuple(min(255, max(0, v + j)) for v, j in zip(COLOR_RGB[obj.color], jitter)))
    return colors


def render(scene: Scene, size: int | None = None) -> Image.Image:
    """Draw `scene` as a `size` x `size` RGB image (default: `scene.size`), anti-aliased."""
    size = scene.size if size is None else size
    if not is_int(size) or size < 1:
        raise BadScene(f"size must be a positive whole number of pixels, got {size!r}.")
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), tuple(scene.background))
    draw = ImageDraw.Draw(image)
    for obj, rgb in zip(scene.objects, object_colors(scene)):
        # The box in supersampled pixels; the shape covers [x0, x1) x [y0, y1).
        x0, y0, x1, y1 = (v * big for v in obj.box())
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if obj.shape == "circle":
            draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=rgb)
        elif obj.shape == "square":
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=rgb)
        elif obj.shape == "triangle":
            draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=rgb)
        elif obj.shape == "diamond":
            draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=rgb)
        else:
            raise BadScene(f"Unknown shape {obj.shape!r}; expected one of {', '.join(SHAPES)}.")
    return image.reduce(SUPERSAMPLE)  # box filter: each output pixel averages 4x4


def render_array(scenes: list[Scene], size: int = 64) -> np.ndarray:
    """Render scenes into one uint8 array (N, size, size, 3)."""
    out = np.empty((len(scenes), size, size, 3), dtype=np.uint8)
    for k, scene in enumerate(scenes):
        out[k] = np.asarray(render(scene, size))
    return out


def scene_items(scenes: list[Scene]) -> tuple[list[Image.Image], list[dict]]:
    """Scenes as (images, metadata) for a search index: each drawn, with its JSON and caption."""
    return [render(s) for s in scenes], [{"scene": s.to_dict(), "caption": caption(s)} for s in scenes]


def scene_image(item: dict) -> Image.Image | None:
    """The image of an index item made by `scene_items` (drawn again), or None for other items."""
    return render(Scene.from_dict(item["scene"])) if item.get("scene") is not None else None
