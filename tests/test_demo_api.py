"""Every endpoint of the running demo, through gradio_client, as a script would call it; bad
input comes back as one error sentence and the server keeps answering."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from demo.scenes import example_files
from vlp import world
from vlp.images import load_image

EXAMPLE = example_files()[0]
ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = {"/caption", "/match", "/random_scene", "/answer", "/search", "/search_image", "/add_images",
             "/attention", "/worked_example"}


def table(rows):
    return {"headers": [f"d{j + 1}" for j in range(len(rows[0]))], "data": rows}


def test_endpoints_are_named(client):
    assert ENDPOINTS <= set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])


def test_caption_and_match(client, model):
    text, score, verdict = client.predict(handle_file(EXAMPLE), "greedy", 3, 30, api_name="/caption")
    assert text == model.caption(load_image(EXAMPLE))
    assert 0.0 <= score <= 1.0 and verdict
    beam, _, _ = client.predict(handle_file(EXAMPLE), "beam", 3, 30, api_name="/caption")
    assert beam == model.caption(load_image(EXAMPLE), num_beams=3)
    assert client.predict(handle_file(EXAMPLE), "a large red circle", api_name="/match") == pytest.approx(
        model.match(load_image(EXAMPLE), "a large red circle"), abs=1e-3)


def test_random_scene(client):
    path, note = client.predict("test", api_name="/random_scene")
    assert Image.open(path).size == (64, 64) and "True caption" in note
    caption = note.split("**")[1]
    assert world.parse(caption) is not None
    _, _, verdict = client.predict(handle_file(path), "greedy", 3, 30, api_name="/caption")
    assert caption in verdict or "Right" in verdict  # the server knows the scene it drew


def test_answer(client, model):
    said, label, _ = client.predict(handle_file(EXAMPLE), "how many shapes are there?", api_name="/answer")
    assert said == model.answer(load_image(EXAMPLE), "how many shapes are there?")
    assert len(label["confidences"]) == 5


def test_search(client):
    pictures, summary = client.predict("a large red circle", None, 5, False, api_name="/search")
    assert len(pictures) == 5 and "results for" in summary
    assert pictures[0]["caption"].startswith("1. cos ") and Image.open(pictures[0]["image"]).size == (192, 192)
    pictures, summary = client.predict("a large red circle", None, 3, True, api_name="/search")
    assert len(pictures) == 3 and "ITM" in summary
    pictures, summary = client.predict(handle_file(EXAMPLE), 4, api_name="/search_image")
    assert len(pictures) == 4 and "Nearest captions" in summary


def test_add_images_then_find_them(app_server, tmp_path):
    from gradio_client import Client

    mine = Client(app_server.url, verbose=False)  # a session of its own: its images are its own
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"mine-{i}.png")
        world.render(world.sample_scene("val", 100 + i), 128).save(paths[-1])
    added, index = mine.predict([handle_file(p) for p in paths], api_name="/add_images")
    assert "Added 2" in added and "Yours:** 2 images" in index
    pictures, _ = mine.predict(handle_file(paths[1]), 3, api_name="/search_image")
    assert "yours: mine-1.png" in pictures[0]["caption"]


def test_attention(client):
    vision, grid, rollout, cross, text, caption, words = client.predict(
        handle_file(EXAMPLE), "", 2, 1, False, api_name="/attention")
    assert grid is None
    for path in (vision, rollout, cross, text):
        assert Image.open(path).width > 300
    assert caption.startswith("The words behind the maps")
    assert words["value"] == 1 and [w[1] for w in words["choices"]] == list(range(1, len(words["choices"]) + 1))
    assert " ".join(w[0].split(". ", 1)[1] for w in words["choices"]) in caption
    _, grid, *_ = client.predict(handle_file(EXAMPLE), "a small red circle", 1, 0, True, api_name="/attention")
    assert Image.open(grid).width > Image.open(vision).width


def test_worked_example(client):
    out = client.predict(table([[1], [2], [3]]), table([[4], [5], [6]]), table([[7], [8], [9]]),
                         api_name="/worked_example")
    assert [row[1:] for row in out[1]["data"]] == [[4, 5, 6], [8, 10, 12], [12, 15, 18]]
    assert [round(row[1], 4) for row in out[7]["data"]] == [8.5752, 8.8509, 8.948]
    assert "√3" in out[8]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bad_input_is_one_sentence_and_the_server_keeps_serving(client, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")  # a text file renamed: the upload takes it, vlp refuses it
    huge = tmp_path / "huge.png"
    Image.new("1", (7000, 6000)).save(huge)  # 42 megapixels in a few kB
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10000, 9000)).save(bomb)  # 90 megapixels: PIL itself refuses to open it
    cases = [
        ((handle_file(notes), "greedy", 3, 30), "/caption", "'notes.png' is not a readable image"),
        ((handle_file(huge), "greedy", 3, 30), "/caption", "too large"),
        ((handle_file(bomb), "greedy", 3, 30), "/caption", "too large"),
        ((None, "greedy", 3, 30), "/caption", "Give an image first"),
        ((handle_file(EXAMPLE), ""), "/answer", "question is empty"),
        ((handle_file(EXAMPLE), "what is a dog?"), "/answer", "'dog'"),
        ((handle_file(EXAMPLE), "what color is the circle " * 12), "/answer", "too long"),
        ((handle_file(EXAMPLE), "a zebra"), "/match", "'zebra'"),
        (("", None, 5, False), "/search", "Type a sentence"),
        ((table([[1], ["x"]]), table([[1]]), table([[1]])), "/worked_example", "not a number"),
    ]
    for args, api, message in cases:
        with pytest.raises(AppError, match=message) as err:
            client.predict(*args, api_name=api)
        assert "/tmp" not in str(err.value) and "Traceback" not in str(err.value)
    text, _, _ = client.predict(handle_file(EXAMPLE), "greedy", 3, 30, api_name="/caption")
    assert text  # still serving


def test_serves_only_its_own_files_and_refuses_big_uploads(app_server, tmp_path):
    import httpx

    base = app_server.url + "gradio_api/file="
    assert httpx.get(base + str(EXAMPLE), timeout=30).status_code == 200
    for private in (ROOT / "README.md", ROOT / "assets" / "vlp-tiny" / "config.json", Path("/etc/passwd")):
        assert httpx.get(base + str(private), timeout=30).status_code == 403
    big = tmp_path / "big.png"
    big.write_bytes(bytes(21_000_000))  # over the 20 MB upload limit
    with open(big, "rb") as f:
        response = httpx.post(app_server.url + "gradio_api/upload", files={"files": ("big.png", f, "image/png")},
                              timeout=60)
    assert response.status_code == 413


def test_a_table_too_large_is_refused_before_its_cells_are_read(client):
    one = table([[1]])
    cases = [  # 2000 rows of cells that are not numbers: the size is refused before any cell is read
        ((table([["x"]] * 2000), one, one), "Q has 2000 rows; a worked example takes at most 16 rows"),
        ((one, table([[1.0] * 17]), one), "K has a row of 17 columns"),
        ((table([[1e308]]), table([[1e308]]), one), "The numbers are too large: QKᵀ overflows"),
    ]
    for args, message in cases:
        with pytest.raises(AppError, match=message) as err:
            client.predict(*args, api_name="/worked_example")
        assert "\n" not in str(err.value)


EXAMPLE_FILE = handle_file(EXAMPLE)
MALFORMED = [  # what a script may send instead of a number or a table, and the sentence it reads
    ((EXAMPLE_FILE, "beam", "abc", 30), "/caption", "number of beams must be a whole number from 1 to 8, got 'abc'"),
    ((EXAMPLE_FILE, "beam", None, 30), "/caption", "number of beams must be a whole number from 1 to 8, got None"),
    ((EXAMPLE_FILE, "greedy", 3, [30]), "/caption", r"maximum length must be a whole number from 1 to 40, got \[30\]"),
    ((EXAMPLE_FILE, "greedy", 3, 99), "/caption", "maximum length must be from 1 to 40, got 99"),
    ((EXAMPLE_FILE, "sideways", 3, 30), "/caption", "'sideways'"),
    (("a red circle", None, "abc", False), "/search", "number of results must be a whole number"),
    (("a red circle", None, 5, "yes"), "/search", "Re-ranking is on or off"),
    ((EXAMPLE_FILE, None), "/search_image", "number of results must be a whole number from 1 to 48, got None"),
    ((EXAMPLE_FILE, "", "abc", 1, False), "/attention", "layer must be a number"),
    ((EXAMPLE_FILE, "", 1, None, False), "/attention", "head must be a number"),
    (("abc", table([[1]]), table([[1]])), "/worked_example", r"'Q \(T × d_k\)' is not what it takes"),
    ((None, table([[1]]), table([[1]])), "/worked_example", r"'Q \(T × d_k\)' is missing"),
    ((table([[1]]), {"headers": ["a"], "data": "x"}, table([[1]])), "/worked_example", r"'K \(S × d_k\)' is not"),
    ((table([[1]]), table([[1]]), [[1]]), "/worked_example", r"'V \(S × d_v\)' is not what it takes"),
    (({"path": 3}, "greedy", 3, 30), "/caption", "'Image' is not what it takes"),
]


@pytest.mark.parametrize("args, api, message", MALFORMED, ids=[f"{api}-{i}" for i, (_, api, _) in enumerate(MALFORMED)])
def test_malformed_values_get_one_sentence(client, args, api, message):
    with pytest.raises(AppError, match=message) as err:
        client.predict(*args, api_name=api)
    assert "upstream Gradio app" not in str(err.value) and "\n" not in err.value.message


def test_invisible_characters_are_shown_escaped(client):
    for invisible, shown in [("\u200b", "\\u200b"), ("\x00", "\\x00")]:
        with pytest.raises(AppError, match="does not know the word") as err:
            client.predict(EXAMPLE_FILE, f"what color is the{invisible} circle?", api_name="/answer")
        assert shown in err.value.message and invisible not in err.value.message


def call_raw(url: str, api: str, data: list) -> str:
    """The error sentence of an endpoint called with raw JSON, as a script that skips gradio_client
    (which would upload a local path) may send it."""
    import httpx

    event = httpx.post(f"{url}gradio_api/call{api}", json={"data": data}, timeout=60).json()["event_id"]
    with httpx.stream("GET", f"{url}gradio_api/call{api}/{event}", timeout=120) as stream:
        lines = [line for line in stream.iter_lines() if line.startswith("data:")]
    return json.loads(lines[-1][5:])["error"]


def test_files_not_uploaded_here_are_refused_in_one_sentence(app_server):
    def image(**fields):
        return [{**fields, "meta": {"_type": "gradio.FileData"}}, "greedy", 3, 30]

    for data, sentence in [
        (image(path="/etc/passwd"), "A file of this request was not uploaded here; upload it first."),
        (image(path=str(ROOT / "README.md")), "A file of this request was not uploaded here; upload it first."),
        (image(path="http://127.0.0.1:1/x.png"), "'Image' takes an uploaded file; this demo fetches no URL."),
        (image(url="data:image/png;base64,iVBORw0KGgo="), "Send the image as an uploaded file, not as inline data."),
    ]:
        assert call_raw(app_server.url, "/caption", data) == sentence
