"""Generator checkpoints (safetensors + model card) and training state files: round trips and refusals."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from sar2opt_geo.errors import CheckpointError
from sar2opt_geo.models import UNetGenerator
from sar2opt_geo.models.checkpoint import load_model, read_card, save_generator
from sar2opt_geo.training import card_for_dataset


def _card(width: float = 0.125):
    card = card_for_dataset("la", "sar", ("VH",), name="unit-test")
    return card.replace(architecture_args={"in_channels": 1, "out_channels": 3, "width": width},
                        training={"command": "sar2opt train ...", "epochs_trained": 1},
                        metrics={"validation": {"psnr": 17.0, "ssim": 0.3, "l1": 0.1}})


def test_round_trip_keeps_outputs_and_card(tmp_path, tiny_generator):
    g = tiny_generator(1, 3, width=0.125)
    card = _card()
    path = save_generator(g, card, tmp_path / "g.safetensors")
    g2, card2 = load_model(path)
    assert card2 == card and read_card(path) == card
    assert card2.input.normalisation == "percentile" and card2.input.percentile == 99.0
    x = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g(x), g2(x))  # bit-identical, eval mode, BN statistics kept
    assert not g2.training


def test_saved_checkpoint_has_umask_permissions(tmp_path, tiny_generator):
    """Regression: safetensors' writer left 0600 files, unreadable by other users of shared weights."""
    old = os.umask(0o022)
    try:
        path = save_generator(tiny_generator(), _card(), tmp_path / "g.safetensors")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


class _Payload:
    """Unpickling this object creates a folder: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"generator": _Payload(str(marker))}, f)
    with pytest.raises(CheckpointError):
        load_model(evil)
    with pytest.raises(CheckpointError):
        read_card(evil)
    # the training-state loader (torch.load(weights_only=True)) refuses it too
    from sar2opt_geo.training import TrainConfig, train

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    os.replace(evil, tmp_path / "run" / "checkpoints" / "state_last.pt")
    ds = _TinyPairs()
    with pytest.raises(CheckpointError, match="state_last.pt"):
        train(ds, None, tmp_path / "run", _card(), TrainConfig(epochs=1, batch_size=2, width=0.125), resume=True)
    assert not marker.exists()


class _TinyPairs:
    """Two random 32 px pairs; enough to build networks before resume fails."""

    in_channels, out_channels = 1, 3

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"condition": torch.rand(1, 32, 32, generator=g) * 2 - 1,
                "target": torch.rand(3, 32, 32, generator=g) * 2 - 1, "key": str(i)}

    def set_epoch(self, epoch: int) -> None:
        pass

    def mean_target(self):
        return np.zeros(3, np.float32)

    def describe(self) -> str:
        return "two random pairs"


def test_random_file_is_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_model(junk)


def test_safetensors_without_card_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in UNetGenerator(width=0.125).state_dict().items()}, str(path))
    with pytest.raises(CheckpointError, match="model card"):
        load_model(path)
