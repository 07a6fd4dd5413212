"""Checkpoint folders: the one atomic save survives a kill at any instant; what was saved loads back."""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from vlp.atomic import atomic_folder, recover
from vlp import checkpoint
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
    last_seen, deadline = 0, time.monotonic() + 12  # bounded in count and time
    for _ in range(40):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env, text=True)
        first = writer.stdout.readline()  # the writer is saving in its loop now
        assert first, "the writer did not start"
        time.sleep(rng.uniform(0.0, 0.05))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        version = read_version(path)  # raises if the folder is missing or torn
        assert version >= 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"], "leftovers not cleaned at load"
        last_seen = version
        if time.monotonic() > deadline:
            break
    assert last_seen >= 1
    # The next save cleans up whatever the killed ones left beside the folder.
    with atomic_folder(path) as tmp:
        (tmp / "a.json").write_text(json.dumps({"version": 0}))
        (tmp / "b.json").write_text(json.dumps({"version": 0}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]


# A writer that saves version 1, then dies at its CUT-th step of saving version 2: a rename, a
# flush to disk, or a removal (cut off after one file of the folder). A stale folder an earlier
# crash left is there too, for the clean-up to remove. Every CUT from 1 on: every instant of a save.
CUT_WRITER = """
import json, os, shutil, sys
from pathlib import Path
from vlp.atomic import atomic_folder

def save(path, version):
    with atomic_folder(path) as tmp:
        (tmp / "a.json").write_text(json.dumps({"version": version}))
        (tmp / "b.json").write_text(json.dumps({"version": version}))

path, cut, steps = Path(sys.argv[1]), int(sys.argv[2]), 0
save(path, 1)
(path.parent / ".saved.tmp-stale").mkdir()
(path.parent / ".saved.tmp-stale" / "x").write_text("x")

def dying(real, partial=False):
    def step(*args, **kwargs):
        global steps
        steps += 1
        if steps == cut:
            for root, _, files in os.walk(args[0]) if partial else ():
                if files:
                    os.remove(os.path.join(root, files[0]))
                    break
            os._exit(9)
        return real(*args, **kwargs)
    return step

os.replace, os.fsync, shutil.rmtree = dying(os.replace), dying(os.fsync), dying(shutil.rmtree, partial=True)
save(path, 2)
"""


def test_a_save_cut_off_at_each_of_its_steps_leaves_a_whole_version_and_no_leftovers(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    versions = []
    for cut in range(1, 40):  # bounded: a save has about 12 steps
        path = tmp_path / str(cut) / "saved"
        path.parent.mkdir()
        done = subprocess.run([sys.executable, "-c", CUT_WRITER, str(path), str(cut)], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode in (0, 9), done.stderr[-800:]
        versions.append(read_version(path))  # raises if the folder is missing or torn
        assert sorted(p.name for p in path.parent.iterdir()) == ["saved"], f"cut {cut}: leftovers not cleaned"
        if done.returncode == 0:  # the save had fewer steps than `cut`: it finished
            break
    assert versions[0] == 1 and versions[-1] == 2 and versions == sorted(versions), versions
    assert done.returncode == 0, "a save of more steps than expected"


@pytest.mark.parametrize("stages", [("old", "old"), ("old", "ready")])
def test_recover_puts_back_the_newest_complete_version(tmp_path, stages):
    path = tmp_path / "saved"
    for version, stage in enumerate(stages, 1):  # version 2 is the newer one
        folder = tmp_path / f".saved.{stage}-{version}"
        folder.mkdir()
        for name in ("a.json", "b.json"):
            (folder / name).write_text(json.dumps({"version": version}))
        os.utime(folder, ns=(version * 10**9, version * 10**9))
    recover(path)
    assert read_version(path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]


def test_readers_recovering_at_once_during_saves_never_lose_the_folder_or_break_the_writer(tmp_path):
    path = tmp_path / "saved"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, text=True)
    assert writer.stdout.readline(), "the writer did not start"
    stop, errors = time.monotonic() + 4, []  # bounded in time

    def read():  # the folder may be missing for an instant mid-save; recover must not fail or interfere
        seen = 0
        while time.monotonic() < stop and not errors:
            try:
                recover(path)
            except Exception as err:  # noqa: BLE001 - reported below
                errors.append(repr(err))
            try:
                version = json.loads((path / "b.json").read_text())["version"]
            except (OSError, ValueError):  # mid-save, or mid-write of b.json
                continue
            if version < seen:  # an older version put back in place of a newer one
                errors.append(f"version {version} after {seen}")
            seen = max(seen, version)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    alive = writer.poll() is None
    writer.kill()
    _, stderr = writer.communicate()
    assert alive, f"a reader broke the writer: {stderr[-800:]}"
    assert not errors
    assert read_version(path) >= 1


def _version_folder(folder: Path, version: int) -> None:
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps({"version": version}))
    (folder / "b.json").write_text(json.dumps({"version": version}))


def test_recover_puts_back_the_newest_complete_version_and_removes_the_rest(tmp_path):
    path = tmp_path / "ckpt"
    _version_folder(tmp_path / ".ckpt.old-1", 1)
    _version_folder(tmp_path / ".ckpt.ready-2", 2)
    _version_folder(tmp_path / ".ckpt.tmp-3", 3)  # maybe incomplete: never put back
    (tmp_path / ".ckpt.trash-old-0").mkdir()  # a removal cut off half-way: never put back
    assert read_version(path) == 2  # the complete new version, not the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    # stopped before the new version was ready: the old one comes back, never a tmp or trash folder
    os.rename(path, tmp_path / ".ckpt.trash-old-9")
    _version_folder(tmp_path / ".ckpt.old-1", 1)
    _version_folder(tmp_path / ".ckpt.tmp-3", 3)
    assert read_version(path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


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


@pytest.mark.parametrize("tower, field, value, message", [
    ("vision", "width", 10**6, r"vision\.width = 1000000, and vlp reads whole numbers from 1 to 4096"),
    ("decoder", "layers", 10**6, r"decoder\.layers = 1000000, and vlp reads whole numbers from 1 to 128"),
    ("text", "context_length", 10**9, r"text\.context_length = 1000000000, .* from 1 to 4096"),
    ("vision", "heads", -4, r"vision\.heads = -4, .* from 1 to 128"),
    ("text", "width", 128.5, r"text\.width = 128\.5, .* whole numbers"),
    ("decoder", "vocab_size", "57", r"decoder\.vocab_size = '57', .* whole numbers"),
    ("vision", "layers", True, r"vision\.layers = True"),
    ("vision", "mlp_ratio", 1e9, r"vision\.mlp_ratio = 1000000000\.0, .* at most 16"),
    ("text", "mlp_ratio", -1.0, r"text\.mlp_ratio = -1\.0"),
    # every size in range, together far too big: 3 towers of 128 layers of width 4096
    ("all", "width", 4096, r"a model of about [\d,]+ parameters, and vlp reads at most 1,000,000,000"),
])
def test_a_config_with_absurd_sizes_is_refused_before_any_tensor_is_allocated(small_net, tmp_path, monkeypatch,
                                                                              tower, field, value, message):
    net, tokenizer = small_net
    save_checkpoint(net, tokenizer, tmp_path / "run")
    config_file = tmp_path / "run" / "config.json"
    config = json.loads(config_file.read_text())
    for name in (["vision", "text", "decoder"] if tower == "all" else [tower]):
        config["model"][name][field] = value
        if tower == "all":
            config["model"][name].update(layers=128, heads=32)
    config["model"]["decoder"]["image_width"] = config["model"]["vision"]["width"]
    config_file.write_text(json.dumps(config))

    def no_network(*args, **kwargs):
        raise AssertionError("VLP(...) was called: the sizes were not checked before allocating")

    monkeypatch.setattr(checkpoint, "VLP", no_network)
    with pytest.raises(BadCheckpoint, match=message):
        read_checkpoint(tmp_path / "run")


def test_saves_work_without_locks_as_on_windows(tmp_path, monkeypatch):
    from vlp import atomic

    monkeypatch.setattr(atomic, "fcntl", None)
    path = tmp_path / "ckpt"
    for version in (1, 2):
        with atomic_folder(path) as tmp:
            (tmp / "a.json").write_text(json.dumps({"version": version}))
            (tmp / "b.json").write_text(json.dumps({"version": version}))
    os.rename(path, tmp_path / ".ckpt.old-x")  # as if cut off between the renames
    assert read_version(path) == 2  # the saved version is put back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
