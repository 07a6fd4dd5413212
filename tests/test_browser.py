"""The demo in headless Chromium: pick an example, caption it, look at its attention.

Needs Debian's Chromium at /usr/bin/chromium (`make test` installs it) and the playwright
Python package; every wait has a timeout, so a broken page fails instead of hanging.
Saves the page as docs/screenshot.png (the README's picture).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import handle_file

from demo.scenes import example_files

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshot.png"
WAIT_MS = 60_000  # the longest any step may take (the CPU may be shared)
LOADED = "(sel) => { const i = document.querySelector(sel); return !!i && i.complete && i.naturalWidth > 0; }"


@pytest.fixture(scope="module")
def browser():
    from playwright import sync_api

    # No silent skip: `make test` installs Chromium; `make test-fast` deselects these tests.
    assert CHROMIUM.exists(), f"no Chromium at {CHROMIUM}: install Debian's chromium package (make test does)"
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS, timeout=WAIT_MS)
        try:
            yield b
        finally:
            b.close()


@pytest.mark.timeout(300)
def test_caption_then_attention(browser, app_server, client):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(app_server.url, wait_until="load", timeout=WAIT_MS)
        example = example_files()[1]
        page.locator("#examples button.gallery-item").nth(1).click()
        expect(page.locator("#scene-note")).to_contain_text("True caption", timeout=WAIT_MS)

        page.click("#caption-btn")
        shown = page.locator("#caption-out textarea")
        expect(shown).not_to_have_value("", timeout=WAIT_MS)
        api, _, _ = client.predict(handle_file(example), "greedy", 3, 30, api_name="/caption")
        assert shown.input_value() == api

        page.get_by_role("tab", name="Attention").click()
        page.click("#attention-btn")
        for map_id in ("#vision-map", "#rollout-map", "#cross-map", "#text-map"):
            page.wait_for_function(LOADED, arg=f"{map_id} img", timeout=WAIT_MS)
        assert page.eval_on_selector("#vision-map img", "i => i.naturalWidth") > 300
        page.wait_for_timeout(500)  # let the last layout settle before the picture
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True, timeout=WAIT_MS)
    finally:
        page.close()


@pytest.mark.timeout(300)
def test_a_file_that_is_not_an_image_is_said_once(browser, app_server, tmp_path):
    from playwright.sync_api import expect

    notes = tmp_path / "notes.png"
    notes.write_text("a text file, renamed")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(app_server.url, wait_until="load", timeout=WAIT_MS)
        page.locator("#image input[type=file]").set_input_files(str(notes))
        sentence = "'notes.png' is not a readable image"
        expect(page.locator("#scene-note")).to_contain_text(sentence, timeout=WAIT_MS)  # said under the image
        page.click("#caption-btn")
        expect(page.locator(".toast-body")).to_contain_text(sentence, timeout=WAIT_MS)
        page.wait_for_timeout(1000)  # any later toast would have come by now
        assert page.locator(".toast-body").count() == 1 and "(2)" not in page.locator(".toast-body").inner_text()
    finally:
        page.close()


@pytest.mark.timeout(300)
def test_a_photo_gets_the_models_notice_under_the_image(browser, app_server, tmp_path):
    import skimage.data
    from PIL import Image
    from playwright.sync_api import expect

    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage.data.astronaut()).save(photo)
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(app_server.url, wait_until="load", timeout=WAIT_MS)
        page.locator("#image input[type=file]").set_input_files(str(photo))
        note = page.locator("#scene-note")
        expect(note).to_contain_text("does not look like a Shapes World scene", timeout=WAIT_MS)
        expect(note).to_contain_text("VLP_MODEL", timeout=WAIT_MS)
        assert note.is_visible()
    finally:
        page.close()
