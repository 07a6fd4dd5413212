"""The command line, as a user runs it: `python -m vlp …`."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vlp import world
from vlp.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "assets" / "examples" / "test-00004.png"
SCENE = world.sample_scene("test", 4)  # the example is this scene


def test_caption_prints_one_line_per_image(capsys):
    assert main(["caption", str(EXAMPLE), str(EXAMPLE), "--beams", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(EXAMPLE))
    assert world.caption_correct(lines[0].split("\t")[1], SCENE)


def test_ask_answers_and_lists_scores(capsys):
    assert main(["ask", str(EXAMPLE), "how many shapes are there?", "-k", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] in world.COUNT_WORDS and len(out) == 4


def test_a_photo_gets_a_notice_on_stderr_and_a_scene_none(tmp_path, capsys):
    import skimage.data
    from PIL import Image

    photo = tmp_path / "coffee.jpg"
    Image.fromarray(skimage.data.coffee()).save(photo)
    assert main(["caption", str(photo), str(EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2  # the captions, as before
    assert err.count("note:") == 1 and str(photo) in err and "Shapes World" in err


@pytest.mark.parametrize("argv, message", [
    (["ask", str(ROOT / "README.md"), "what color is the circle?"], "not a readable image"),
    (["ask", str(EXAMPLE), "is the zebra happy?"], "'zebra'"),
    (["caption", str(EXAMPLE), "--model", "/no/such/model"], "No vlp checkpoint"),
    (["train", "--minutes", "1", "--steps", "3", "--out", "/no/such/run"], "--steps or --minutes"),
    (["train", "--minutes", "-2", "--out", "/no/such/run"], "must be positive"),
])
def test_bad_input_is_one_sentence_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_words_lists_the_vocabulary_that_an_unknown_word_points_to(capsys):
    assert main(["ask", str(EXAMPLE), "what colour is it?"]) == 2
    assert "python -m vlp words" in capsys.readouterr().err
    assert main(["words"]) == 0
    listed = capsys.readouterr().out.splitlines()[1].split()
    assert {"color", "circle", "left", "yes"} <= set(listed) and "colour" not in listed and "[PAD]" not in listed


def test_eval_prints_json(capsys):
    assert main(["eval", "--split", "test", "--n", "10"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["scenes"] == 10 and 0 <= scores["vqa_accuracy"] <= 1 and "vqa_by_type" in scores


def test_every_command_has_help():
    for command in ("world", "train", "eval", "caption", "ask", "words", "index", "bench"):
        result = subprocess.run([sys.executable, "-m", "vlp", command, "--help"], capture_output=True, text=True,
                                cwd=ROOT, timeout=120)
        assert result.returncode == 0 and "usage: python -m vlp" in result.stdout, command
