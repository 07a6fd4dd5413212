"""Checkpoint folders: the one atomic save survives a kill at any instant; what was saved loads back."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vlp.atomic import atomic_folder, recover
from vlp.checkpoint import fingerprint, read_checkpoint, save_checkpoint
from vlp.data import build_tokenizer
from vlp.errors import BadCheckpoint
from vlp.model import VLP, config_for

# A writer that saves version after version of a two-file folder, for the kill test: each
# version's files must agree (a torn save would mix two versions or miss a file).
WRITER = """
import json, sys
from vlp.atomic import atomic_folder
path, version = sys.argv[1], 0
while True:
    version += 1
    with atomic_folder(path) as tmp:
        (tmp / "a.json").write_text(json.dumps({"version": version, "pad": "x" * 200_000}))
        (tmp / "b.json").write_text(json.dumps({"version": version}))
        print(version, flush=True)
"""


def read_version(folder: Path) -> int:
    recover(folder)
    a = json.loads((folder / "a.json").read_text())["version"]
    b = json.loads((folder / "b.json").read_text())["version"]
    assert a == b, f"a torn save: a.json is version {a}, b.json version {b}"
    return a


def test_a_kill_at_any_instant_of_a_save_leaves_a_whole_version(tmp_path):
    path = tmp_path / "saved"
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    last_seen, deadline = 0, time.monotonic() + 30  # bounded in count and time
    for _ in range(40):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env, text=True)
        first = writer.stdout.readline()  # the writer is saving in its loop now
        assert first, "the writer did not start"
        time.sleep(rng.uniform(0.0, 0.05))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        version = read_version(path)  # raises if the folder is missing or torn
        assert version >= 1
        last_seen = version
        if time.monotonic() > deadline:
            break
    assert last_seen >= 1
    # The next save cleans up whatever the killed ones left beside the folder.
    with atomic_folder(path) as tmp:
        (tmp / "a.json").write_text(json.dumps({"version": 0}))
        (tmp / "b.json").write_text(json.dumps({"version": 0}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]


def test_recover_puts_back_the_new_version_when_a_save_stopped_between_its_renames(tmp_path):
    path = tmp_path / "ckpt"
    old = tmp_path / ".ckpt.old-1"
    ready = tmp_path / ".ckpt.ready-2"
    for folder, version in ((old, 1), (ready, 2)):
        folder.mkdir()
        (folder / "a.json").write_text(json.dumps({"version": version}))
        (folder / "b.json").write_text(json.dumps({"version": version}))
    assert read_version(path) == 2  # the complete new version, not the old one
    os.rename(path, tmp_path / "gone")  # stopped before the new one was ready: the old comes back
    assert read_version(path) == 1


def test_a_failed_save_leaves_the_old_folder_and_no_leftovers(tmp_path):
    path = tmp_path / "ckpt"
    with atomic_folder(path) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(path) as tmp:
            (tmp / "a.txt").write_text("new")
            raise RuntimeError("disk full")
    assert (path / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    net = VLP(config_for("tiny", len(tokenizer), tokenizer.eos_id), pad_id=tokenizer.pad_id)
    return net, tokenizer


def test_a_checkpoint_round_trips_with_its_fingerprint(small_net, tmp_path):
    net, tokenizer = small_net
    save_checkpoint(net, tokenizer, tmp_path / "run", {"note": "x"})
    again, tokenizer_again, metrics = read_checkpoint(tmp_path / "run")
    assert fingerprint(again.state_dict()) == fingerprint(net.state_dict())
    assert len(tokenizer_again) == len(tokenizer) and metrics == {"note": "x"}
    (tmp_path / "run" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(BadCheckpoint, match="could not be read"):
        read_checkpoint(tmp_path / "run")
