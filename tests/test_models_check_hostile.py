"""`depth-prior weights check` says "ok" only after a test frame (issue 13, item 8): all-NaN weights,
NaN/inf normalisation and absurd input sizes in the card are refused in one sentence; the pickle
refusal reads as a sentence."""
from __future__ import annotations

import json

import pytest
from helpers_errors import assert_one_sentence
import helpers_releases as hr
from helpers_models import V2S_CARD, write_release_pth

from depth_prior_ros.cli import main as cli_main


def _check(path, capsys):
    code = cli_main(["weights", "check", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def test_a_good_checkpoint_is_ok_after_its_test_frame(tmp_path, capsys):
    path = write_release_pth(tmp_path / "good.pth")
    code, out, _ = _check(path, capsys)
    assert code == 0 and "test frame: 640x360 camera -> 98x56 network input" in out and "ok:" in out


def test_all_nan_weights_are_not_ok(tmp_path, capsys):
    state = hr.release_state(hr.read_fixture("depth_anything_v2_vits.pth"))
    for tensor in state.values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
    path = hr.write_pth(state, tmp_path / "nan.pth")
    (tmp_path / "nan.card.json").write_text(json.dumps(V2S_CARD))
    code, out, err = _check(path, capsys)
    assert code == 2 and "no finite output" in err and "ok:" not in out
    assert_one_sentence(err, path)


@pytest.mark.parametrize("change, expected", [
    ({"normalization": {"mean": [float("nan")] * 3, "std": [0.2] * 3}}, "normalization.mean must be three finite"),
    ({"normalization": {"mean": [0.5] * 3, "std": [float("inf")] * 3}}, "normalization.std must be three finite"),
    ({"input_size": [True, True]}, "input_size must be [height, width] in positive integers"),
    ({"input_size": [100000, 100000]}, "more than 4,000,000 pixels"),
    ({"short_side": True}, "short_side must be a positive integer"),
])
def test_card_values_that_cannot_run_are_not_ok(tmp_path, capsys, change, expected):
    path = write_release_pth(tmp_path / "m.pth", card=None)
    # json writes NaN/Infinity tokens, which json.loads reads back as floats: what a hand-edited card holds.
    path.with_suffix(".card.json").write_text(json.dumps({**V2S_CARD, **change}))
    code, out, err = _check(path, capsys)
    assert code == 2 and expected in err and "ok:" not in out
    assert_one_sentence(err, ignore_paths=True)


class Payload:
    """Any class a weights-only unpickler does not allow."""


def test_the_pickle_refusal_is_a_sentence(tmp_path, capsys):
    import torch

    path = tmp_path / "obj.pth"
    torch.save({"w": torch.zeros(1), "obj": Payload()}, str(path))
    code, _, err = _check(path, capsys)
    assert code == 2 and "holds a pickled '" in err and "which could run code" in err
    assert_one_sentence(err, ignore_paths=True)
    # An INST opcode: the unpickler's message names no global, which read "holds a pickled an object".
    path.write_bytes(b"(i__builtin__\nobject\n.")
    code, _, err = _check(path, capsys)
    assert code == 2 and "holds pickled objects other than tensors, which could run code" in err
    assert "pickled an" not in err
