"""The Train tab's run (demo/training.py): one at a time for the server, bounded before it starts,
stoppable only by whoever started it, its losses and snapshots read live; and the tab's handlers."""
import time

import pytest
from PIL import Image

from demo import train, training
from demo.scenes import example_files
from vlp.errors import BadArgument
from vlp.limits import MAX_TRAIN_STEPS

pytestmark = pytest.mark.timeout(300)


def wait(run, until=("finished", "stopped", "failed"), seconds=240):
    end = time.time() + seconds
    while run.view().status not in until and time.time() < end:
        time.sleep(0.2)
    return run.view()


def test_a_short_run_reports_every_step_and_serves_its_last_weights(tmp_path):
    drawn = []
    run = training.LiveRun(tmp_path, on_snapshot=drawn.append)
    run.start("micro", 6, "me")
    with pytest.raises(training.Busy, match="one runs at a time"):
        run.start("micro", 6, "someone else")
    view = wait(run)
    assert view.status == "finished" and view.step == 6 and view.snapshot == 6 and view.owner == "me", view
    assert [row["step"] for row in view.losses if row["objective"] == "itc"] == list(range(1, 7))
    assert len(drawn) == 1 and run.model() is drawn[0]  # the last step's weights: its snapshot
    assert isinstance(run.model().caption(Image.open(example_files()[1])), str)
    table = train.loss_table(view)
    assert set(table["objective"]) == {"itc", "itm", "caption", "vqa"} and len(table) == 4 * 6  # no itm_acc


def test_only_its_owner_stops_a_run_and_a_stopped_run_says_so(tmp_path):
    run = training.LiveRun(tmp_path)
    run.start("micro", MAX_TRAIN_STEPS, "me")
    wait(run, until=("running",))
    with pytest.raises(BadArgument, match="Only the visitor who started"):
        run.stop("someone else")
    run.stop("me")
    view = wait(run)
    assert view.status == "stopped" and 0 < view.step < MAX_TRAIN_STEPS, view
    assert "stopped" in train.status_line(view, "me") and train.status_line(view, "me").startswith("Your run")
    assert train.status_line(view, "someone else").startswith("A run started by another visitor")
    with pytest.raises(BadArgument, match="No run is in progress"):
        run.stop("me")


@pytest.mark.parametrize("size, steps, message", [("huge", 10, "one of micro, tiny"), ("micro", 0, "from 1 to"),
                                                  ("micro", MAX_TRAIN_STEPS + 1, "from 1 to"),
                                                  ("micro", "abc", "whole number")])
def test_a_run_is_bounded_before_it_starts(tmp_path, size, steps, message):
    run = training.LiveRun(tmp_path)
    with pytest.raises(BadArgument, match=message):
        run.start(size, steps, "me")
    assert run.view().status == "idle"


def test_compare_needs_a_trained_model_and_shows_both(model):
    with pytest.raises(BadArgument, match="No trained model yet"):
        train.compare(model, None, str(example_files()[1]), "what color is the circle?")
    table = train.compare(model, model, str(example_files()[1]), "what color is the circle?")
    assert table.count("\n| ") == 3 and "the model you are training" in table and "vlp-tiny" in table
