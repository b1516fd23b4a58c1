"""Checkpoints: round trip, atomic writes, and refusal of damaged or foreign files."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

import seqlm
from seqlm.checkpoints.format import load_checkpoint, save_checkpoint
from seqlm.data.vocab import Vocab
from seqlm.errors import CheckpointError
from seqlm.runs.saved import load_trained

TINY = dict(hidden=16, max_tokens=2000, batch_size=8, num_steps=10, predict=5,
            checkpoint_every=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, book_path):
    """A tiny AdamW run with embeddings, saved after each of its 3 epochs."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ckpt") / "run"
    result = seqlm.run(data=book_path, out=out, epochs=3, optimizer="adamw",
                       embedding_dim=8, **TINY)
    return result


def _state(tmp_path: Path) -> dict:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 4,
            "note": "ok", "nested": [1.5, None, {"x": torch.arange(3)}]}


def test_round_trip_restores_weights_vocabulary_and_optimizer(trained):
    saved = load_checkpoint(trained.out_dir, "checkpoint")
    assert saved["epoch"] == 3
    for key, value in trained.model.state_dict().items():
        assert torch.equal(saved["model"][key], value.cpu()), key
    assert Vocab.from_dict(saved["vocab"]).idx_to_token == trained.vocab.idx_to_token
    # The optimizer state loads into a fresh AdamW and matches the live one exactly.
    optimizer = torch.optim.AdamW(trained.model.parameters(), lr=0.002)
    optimizer.load_state_dict(saved["trainer"]["optimizer"])
    live = trained.model.state_dict()  # same parameters; compare Adam's moments
    assert live
    state = optimizer.state_dict()["state"]
    assert len(state) == len(list(trained.model.parameters()))
    assert all(int(s["step"]) == saved["trainer"]["optimizer"]["state"][i]["step"].item()
               for i, s in state.items())
    assert [m["epoch"] for m in saved["trainer"]["history"]] == [1, 2, 3]


def test_reloaded_model_gives_the_same_outputs(trained):
    rebuilt = load_trained(trained.out_dir, "last")
    X = torch.randint(0, len(trained.vocab), (2, 7))
    trained.model.eval()
    expected, _ = trained.model(X, trained.model.begin_state(2, "cpu"))
    got, _ = rebuilt.model(X, rebuilt.model.begin_state(2, "cpu"))
    assert torch.equal(expected, got)
    assert rebuilt.epoch == 3


def test_nested_state_round_trips_exactly(tmp_path):
    state = _state(tmp_path)
    save_checkpoint(tmp_path, state)
    back = load_checkpoint(tmp_path)
    assert back["epoch"] == 4 and back["note"] == "ok"
    assert torch.equal(back["nested"][2]["x"], torch.arange(3))
    assert back["nested"][:2] == [1.5, None]
    assert set(back["optimizer"]["state"]) == {0, 1}  # integer keys survive JSON
    for k, v in state["model"].items():
        assert torch.equal(back["model"][k], v)


def _tensor_file(directory: Path, name: str = "checkpoint") -> Path:
    header = json.loads((directory / f"{name}.json").read_text())
    return directory / header["tensors"]


def test_pickle_renamed_as_checkpoint_is_refused_without_running_it(tmp_path):
    save_checkpoint(tmp_path, _state(tmp_path))
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps({"weights": Exploit()})
    # Replace the tensor file with the pickle and make the checksum agree with it, as a
    # deliberate attacker would; safetensors must still refuse to parse it.
    tensor_file = _tensor_file(tmp_path)
    tensor_file.write_bytes(payload)
    header = json.loads((tmp_path / "checkpoint.json").read_text())
    import hashlib

    header["tensors_sha256"] = hashlib.sha256(payload).hexdigest()
    (tmp_path / "checkpoint.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(tmp_path)
    # A pickle in place of the JSON is refused too.
    (tmp_path / "checkpoint.json").write_bytes(payload)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path)
    assert not marker.exists()


def test_a_file_given_for_a_run_folder_is_named_as_such(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(notes)
    assert str(caught.value) == (f"{notes} is a file, not a run folder; give the folder of a "
                                 "seqlm run (or its checkpoint.json)")
    assert notes.read_text() == "my notes\n"


def test_truncated_tensor_file_is_refused(tmp_path):
    save_checkpoint(tmp_path, _state(tmp_path))
    tensor_file = _tensor_file(tmp_path)
    data = tensor_file.read_bytes()
    tensor_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path)


def test_truncated_json_is_refused(tmp_path):
    save_checkpoint(tmp_path, _state(tmp_path))
    path = tmp_path / "checkpoint.json"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path)


def test_corrupted_byte_is_refused(tmp_path):
    save_checkpoint(tmp_path, _state(tmp_path))
    tensor_file = _tensor_file(tmp_path)
    data = bytearray(tensor_file.read_bytes())
    data[-3] ^= 0xFF
    tensor_file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("version, hint", [(99, "upgrade seqlm"), (0, "the seqlm that wrote")])
def test_incompatible_format_version_is_refused(tmp_path, version, hint):
    save_checkpoint(tmp_path, _state(tmp_path))
    path = tmp_path / "checkpoint.json"
    header = json.loads(path.read_text())
    header["version"] = version
    path.write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match=hint):
        load_checkpoint(tmp_path)


def test_missing_checkpoint_names_the_folder(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere: no such folder; give the folder of a "
                       "seqlm run that saved a checkpoint"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*checkpoint.json; give the "
                       r"folder of a run that saved one \(.* has none\)"):
        load_checkpoint(tmp_path)


def test_failing_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, {"epoch": 1, "w": torch.ones(3)})
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(CheckpointError, match="previous one, if any, is unchanged"):
        save_checkpoint(tmp_path, {"epoch": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    back = load_checkpoint(tmp_path)
    assert back["epoch"] == 1 and torch.equal(back["w"], torch.ones(3))
    # No half-written files are left beside it.
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".safetensors"]


def test_cli_reports_a_damaged_checkpoint_in_one_line(trained, tmp_path):
    import shutil

    from click.testing import CliRunner

    from seqlm.cli import main

    copy = tmp_path / "copy"
    shutil.copytree(trained.out_dir, copy)
    tensor_file = _tensor_file(copy, "best")
    tensor_file.write_bytes(tensor_file.read_bytes()[:50])
    result = CliRunner().invoke(main, ["generate", str(copy), "--length", "3"])
    assert result.exit_code == 1
    assert "Error:" in result.output and "truncated or corrupt" in result.output
    assert "Traceback" not in result.output


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b) and a.dtype == b.dtype
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return type(b) is list and len(a) == len(b) and all(map(_same, a, b))
    return a == b and type(a) is type(b)


def test_the_per_epoch_snapshot_is_what_a_save_and_load_would_give_and_owns_its_data():
    from seqlm.checkpoints.format import pack, unpack
    from seqlm.checkpoints.saver import cpu_copy

    weights = torch.arange(6.0).reshape(2, 3).t()  # not contiguous
    row = {"epoch": 3, "train_loss": 1.5, "val_loss": None, "name": "x", "ok": True}
    state = {"model": {"w": weights}, "history": [row, dict(row, epoch=4)],
             "optimizer": {"state": {0: {"step": torch.tensor(5.0)}}, "groups": (1, 2.5)},
             "rng": [torch.zeros(3, dtype=torch.uint8), None]}
    tensors: dict[str, torch.Tensor] = {}
    expected = unpack(pack(state, tensors), tensors)
    copy = cpu_copy(state)
    assert _same(copy, expected)

    weights.add_(1)
    row["epoch"] = 99
    assert copy["model"]["w"][0, 0].item() == 0.0
    assert copy["history"][0]["epoch"] == 3


def test_the_snapshot_refuses_what_a_checkpoint_cannot_store_at_once():
    from seqlm.checkpoints.saver import cpu_copy

    with pytest.raises(TypeError, match="cannot store a object"):
        cpu_copy({"history": [{"epoch": 1, "bad": object()}]})


def test_weights_that_do_not_fit_say_what_torch_found_first(tmp_path):
    from torch import nn

    from seqlm.checkpoints.format import load_weights

    with pytest.raises(CheckpointError) as caught:
        load_weights(nn.Linear(4, 3), {"weight": torch.zeros(2, 4), "bias": torch.zeros(2)},
                     tmp_path)
    message = str(caught.value)
    assert message.startswith(f"the weights in {tmp_path} do not fit the model its settings "
                              "describe (size mismatch for weight: copying a param with shape "
                              "torch.Size([2, 4]) from checkpoint")
    assert "; and 1 more); the checkpoint was edited or damaged" in message
    assert "Error(s) in loading" not in message
