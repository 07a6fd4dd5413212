"""An honest notice for images that are not Shapes World: scenes in any file form pass, photos do not."""
import io

import numpy as np
import pytest
import skimage.data
from PIL import Image

import vlp
from vlp import world

PHOTOS = ["astronaut", "coffee", "chelsea", "camera", "rocket", "coins", "immunohistochemistry", "retina", "moon"]


def forms(image: Image.Image) -> dict[str, Image.Image]:
    """A scene as people upload it: PNG, JPEG, RGBA, grey, palette (adaptive: a dithered web palette
    turns flat colour into noise), large."""
    jpeg = io.BytesIO()
    image.save(jpeg, "JPEG", quality=60)
    return {"png": image, "jpeg": Image.open(io.BytesIO(jpeg.getvalue())), "rgba": image.convert("RGBA"),
            "grey": image.convert("L"), "palette": image.convert("P", palette=Image.ADAPTIVE, colors=32), "large": image.resize((700, 700), Image.BICUBIC)}


def test_scenes_in_every_form_look_like_the_world():
    low = {}
    for scene in world.scenes("test", 60) + world.scenes("novel", 20):
        for form, image in forms(world.render(scene)).items():
            seen = world.likeness(image)
            if seen.score < 1.0:
                low[form] = seen
    assert low == {}


@pytest.mark.parametrize("name", PHOTOS)
def test_photos_do_not(name):
    assert world.likeness(Image.fromarray(getattr(skimage.data, name)())).score < 1.0


def test_vlp_tiny_names_the_world_and_the_way_to_real_weights_for_a_photo():
    model = vlp.load(device="cpu")
    notice = model.domain_notice(skimage.data.astronaut())
    assert "Shapes World" in notice and "openclip:" in notice and "VLP_MODEL" in notice
    assert model.domain_notice(world.render(world.sample_scene("test", 0))) is None
    assert model.domain_notice(str(vlp.ASSETS / "examples" / "test-00004.png")) is None


def test_a_blank_or_dark_image_is_not_a_scene():
    assert world.likeness(Image.new("RGB", (64, 64), (20, 20, 20))).score == 0.0
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert world.likeness(Image.fromarray(noise)).score < 1.0
