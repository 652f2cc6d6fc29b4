"""dlbook.device and dlbook.seed."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import dlbook


def test_device_is_usable():
    dev = dlbook.device()
    assert dev.type in {"cuda", "mps", "cpu"}
    assert (torch.ones(2, device=dev) * 2).sum().item() == 4


def test_device_can_be_forced(monkeypatch):
    monkeypatch.setenv("DLBOOK_DEVICE", "cpu")
    assert dlbook.device() == torch.device("cpu")


def test_device_prefers_cuda_when_available(monkeypatch):
    monkeypatch.delenv("DLBOOK_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dlbook.device().type == "cuda"


def test_seed_makes_all_three_generators_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3)

    dlbook.seed(123)
    first = draw()
    dlbook.seed(123)
    second = draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])
    dlbook.seed(124)
    assert draw()[0] != first[0]


def test_seed_returns_a_seeded_generator():
    a = torch.rand(4, generator=dlbook.seed(7))
    b = torch.rand(4, generator=dlbook.seed(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [1.5, "3", None, True])
def test_seed_rejects_non_integers(bad):
    with pytest.raises(TypeError, match="seed expects an int"):
        dlbook.seed(bad)


@pytest.mark.parametrize("bad", [-1, 2**64])
def test_seed_rejects_out_of_range(bad):
    with pytest.raises(ValueError, match="0 <= n < 2\\*\\*63"):
        dlbook.seed(bad)
