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
def test_adding_a_file_that_is_not_an_image_says_so_once(browser, app_server, tmp_path):
    from playwright.sync_api import expect

    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    page = _open(browser, app_server, 1400, 1000)
    try:
        page.get_by_role("tab", name="Search").first.click()
        page.get_by_text("Add your own images").click()
        page.locator("#add-files input[type=file]").set_input_files(str(notes))
        toast = page.locator(".toast-body")
        expect(toast).to_contain_text("notes.txt", timeout=WAIT_MS)  # the component refuses it; the upload route too
        expect(toast).to_contain_text("image", timeout=WAIT_MS)
        page.wait_for_timeout(1000)  # any later toast would have come by now
        assert toast.count() == 1
    finally:
        page.close()


@pytest.mark.timeout(300)
def test_a_short_run_trains_in_the_browser_and_answers_beside_the_demos_model(browser, app_server):
    from playwright.sync_api import expect

    page = _open(browser, app_server, 1400, 1000)
    try:
        page.locator("#examples button.gallery-item").nth(1).click()
        page.get_by_role("tab", name="Train").first.click()
        page.locator("#train-steps input[type=number]").fill("25")
        page.locator("#train-steps input[type=number]").press("Enter")
        page.click("#train-start")
        expect(page.locator("#train-status")).to_contain_text("step 25 of 25", timeout=WAIT_MS * 2)
        expect(page.locator("#train-status")).to_contain_text("finished", timeout=WAIT_MS)
        page.wait_for_function(LOADED, arg="#train-attention img", timeout=WAIT_MS)
        expect(page.locator("#train-losses")).to_contain_text("caption", timeout=WAIT_MS)  # the plot's legend
        page.click("#train-compare-btn")
        expect(page.locator("#train-compare")).to_contain_text("the model you are training", timeout=WAIT_MS)
    finally:
        page.close()


@pytest.mark.timeout(300)
def test_a_photo_gets_the_models_notice_under_the_image(browser, app_server, tmp_path):
    from playwright.sync_api import expect

    photo = _photo(tmp_path, "astronaut")
    page = _open(browser, app_server, 390, 844)  # a phone
    try:
        page.locator("#image input[type=file]").set_input_files(str(photo))
        note = page.locator("#scene-note")
        expect(note).to_contain_text("does not look like a Shapes World scene", timeout=WAIT_MS)
        expect(note).to_contain_text("VLP_MODEL", timeout=WAIT_MS)
        assert note.is_visible()
    finally:
        page.close()


def _open(browser, app_server, width: int, height: int):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(WAIT_MS)
    page.goto(app_server.url, wait_until="load", timeout=WAIT_MS)
    return page


def _photo(tmp_path, name: str):
    """A real photo from scikit-image's sample data (`astronaut`, `chelsea` …), saved as a JPEG."""
    import skimage.data
    from PIL import Image

    path = tmp_path / f"{name}.jpg"
    Image.fromarray(getattr(skimage.data, name)()).save(path)
    return path


def _badges(page) -> int:
    """How many "Error" badges the page's outputs show."""
    return page.locator("[data-testid=status-tracker].error, .wrap.error").count()


@pytest.mark.timeout(300)
def test_a_typed_question_and_an_error_after_it_leave_one_message(browser, app_server):
    from playwright.sync_api import expect

    page = _open(browser, app_server, 1400, 1000)
    try:
        page.locator("#examples button.gallery-item").nth(1).click()  # a red and a green circle
        expect(page.locator("#scene-note")).to_contain_text("True caption", timeout=WAIT_MS)
        page.get_by_role("tab", name="Ask").click()
        page.locator("#question textarea").fill("How many shapes are there")  # capitals, no question mark
        page.locator("#question textarea").press("Enter")
        expect(page.locator("#answer-out textarea")).to_have_value("two", timeout=WAIT_MS)
        page.locator("#known-words").get_by_text("Words the model knows").click()  # one click
        expect(page.locator("#known-words")).to_contain_text("triangle", timeout=WAIT_MS)

        page.locator("#question textarea").fill("what is a dog?")
        page.locator("#question textarea").press("Enter")
        toast = page.locator(".toast-body")
        expect(toast).to_contain_text("'dog'", timeout=WAIT_MS)
        expect(toast).to_contain_text("Words the model knows", timeout=WAIT_MS)
        expect(page.locator("#answer-out textarea")).to_have_value("", timeout=WAIT_MS)  # no stale answer
        page.wait_for_timeout(1000)
        assert page.locator("#answer-verdict").inner_text().strip() == ""  # no stale "✓ Right"
        assert _badges(page) == 0 and toast.count() == 1
    finally:
        page.close()


@pytest.mark.timeout(300)
def test_a_photo_gets_the_notice_beside_the_results(browser, app_server, tmp_path):
    from playwright.sync_api import expect

    photo = _photo(tmp_path, "chelsea")
    page = _open(browser, app_server, 1400, 1000)
    try:
        expect(page.locator("#caption-score input")).to_have_value("", timeout=WAIT_MS)  # "–" until a score
        assert page.locator("#caption-score input").get_attribute("placeholder") == "–"
        page.locator("#image input[type=file]").set_input_files(str(photo))
        expect(page.locator("#scene-note")).to_contain_text("Shapes World", timeout=WAIT_MS)
        page.click("#caption-btn")
        verdict = page.locator("#caption-verdict")
        expect(verdict).to_contain_text("does not look like a Shapes World scene", timeout=WAIT_MS)
        expect(verdict).to_contain_text("VLP_MODEL")
        page.get_by_role("tab", name="Ask").click()
        page.locator("#question textarea").fill("what color is the circle?")
        page.get_by_role("button", name="Ask", exact=True).click()
        expect(page.locator("#answer-verdict")).to_contain_text("does not look like a Shapes World scene",
                                                                timeout=WAIT_MS)
        page.get_by_role("tab", name="Attention").click()
        page.click("#attention-btn")
        expect(page.locator("#attention-words")).to_contain_text("does not look like a Shapes World scene",
                                                                 timeout=WAIT_MS)
        page.wait_for_function(LOADED, arg="#vision-map img", timeout=WAIT_MS)
        page.locator("#examples button.gallery-item").nth(0).click()  # another image: the maps go
        expect(page.locator("#vision-map img")).to_have_count(0, timeout=WAIT_MS)
        expect(page.locator("#attention-words")).to_have_text("", timeout=WAIT_MS)
    finally:
        page.close()


@pytest.mark.timeout(300)
def test_on_a_phone_the_tabs_results_and_tables_fit(browser, app_server):
    from playwright.sync_api import expect

    page = _open(browser, app_server, 390, 844)
    try:
        page.locator("#examples button.gallery-item").nth(1).click()
        expect(page.locator("#scene-note")).to_contain_text("True caption", timeout=WAIT_MS)
        page.evaluate("window.scrollTo(0, 0)")
        tabs = page.get_by_role("tab")
        assert tabs.count() == 7  # none hidden behind a "more" menu
        assert all(tabs.nth(i).bounding_box()["y"] + 30 < 844 for i in range(7))  # on the first screen
        page.get_by_role("tab", name="Search").click()
        page.get_by_role("button", name="Search with the image on the left").click()
        tiles = page.locator("#results .thumbnail-item")
        expect(tiles).to_have_count(8, timeout=WAIT_MS)
        page.wait_for_timeout(500)
        for i in range(8):
            box = tiles.nth(i).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, f"result {i + 1} is cut off"
            assert tiles.nth(i).locator(".caption-label").evaluate("e => e.scrollWidth <= e.clientWidth + 1")
        assert page.locator("#results .grid-wrap").evaluate("e => e.scrollHeight <= e.clientHeight + 1")
        page.get_by_role("tab", name="Learn").click()
        tables = page.locator(".step-table")
        expect(tables).to_have_count(4, timeout=WAIT_MS)
        for i in range(4):
            box = tables.nth(i).bounding_box()
            assert box["x"] + box["width"] <= 390 + 1
            header = tables.nth(i).locator("th").last.bounding_box()
            assert header["x"] + header["width"] <= 390 + 1 or tables.nth(i).evaluate(
                "e => [...e.querySelectorAll('*')].some(x => x.scrollWidth > x.clientWidth && "
                "getComputedStyle(x).overflowX.match(/auto|scroll/))")  # cut off only where it scrolls
        page.get_by_role("tab", name="About").click()
        numbers = page.locator("#about-card td:nth-child(2)")
        expect(numbers.first).to_be_visible(timeout=WAIT_MS)
        # a number on one line ("0.995", never "0.9" over "95"), inside the screen
        lines = numbers.evaluate_all("cells => cells.map(c => { const r = document.createRange(); "
                                     "r.selectNodeContents(c); return r.getClientRects().length; })")
        assert lines and all(n == 1 for n in lines), lines
        assert all(box["x"] + box["width"] <= 390 + 1 for box in (numbers.nth(i).bounding_box() for i in range(3)))
    finally:
        page.close()


@pytest.mark.timeout(300)
def test_on_a_projector_the_text_is_large_and_the_header_leads_to_the_card(browser, app_server):
    from playwright.sync_api import expect

    page = _open(browser, app_server, 1920, 1080)
    try:
        size = "e => parseFloat(getComputedStyle(e).fontSize)"
        tab = page.get_by_role("tab", name="Caption")
        projector = tab.evaluate(size)
        assert projector >= 17
        page.locator("#large-text input").check()
        page.wait_for_timeout(300)
        assert tab.evaluate(size) > projector
        expect(page.get_by_text("Use via API")).to_be_visible()
        page.click("#about-btn")
        expect(page.get_by_role("tab", name="About").first).to_have_attribute("aria-selected", "true", timeout=WAIT_MS)
        expect(page.get_by_text("VLP_CAPTIONER").first).to_be_visible(timeout=WAIT_MS)
        # the text self-attention table grows with the text, its picture scaled up to fill it
        page.locator("#examples button.gallery-item").nth(1).click()
        page.get_by_role("tab", name="Attention").first.click()
        page.click("#attention-btn")
        page.wait_for_function(LOADED, arg="#text-map img", timeout=WAIT_MS)
        shown = page.eval_on_selector("#text-map img", "i => [i.naturalHeight, i.getBoundingClientRect().height, "
                                      "getComputedStyle(i).objectFit]")
        assert shown[1] >= 800 and shown[2] == "contain" and shown[1] > shown[0], shown
    finally:
        page.close()


@pytest.mark.timeout(180)
def test_each_tab_shows_once_whichever_is_open(browser, app_server):
    """A component placed between two tabs (the Train tab's timer once was) made Gradio show the
    next tab twice once it was opened."""
    from playwright.sync_api import expect

    page = _open(browser, app_server, 1400, 1000)
    try:
        tabs = page.get_by_role("tab")
        expect(tabs.last).to_have_text("About", timeout=WAIT_MS)
        names = [tabs.nth(i).inner_text() for i in range(tabs.count())]
        assert len(names) == len(set(names)) == 7, names
        for name in names:
            page.get_by_role("tab", name=name).click()
            page.wait_for_timeout(500)
            assert [tabs.nth(i).inner_text() for i in range(tabs.count())] == names, name
    finally:
        page.close()
