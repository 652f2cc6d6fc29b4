"""dlbook.device and dlbook.seed."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import dlbook
from tests.helpers import check_bad_inputs


def test_device_is_usable():
    dev = dlbook.device()
    assert dev.type in {"cuda", "mps", "cpu"}
    assert (torch.ones(2, device=dev) * 2).sum().item() == 4


def test_device_can_be_forced(monkeypatch):
    monkeypatch.setenv("DLBOOK_DEVICE", "cpu")
    assert dlbook.device() == torch.device("cpu")


def test_an_empty_override_is_no_override(monkeypatch):
    monkeypatch.setenv("DLBOOK_DEVICE", "")
    assert dlbook.device().type in {"cuda", "mps", "cpu"}


def test_device_prefers_cuda_when_available(monkeypatch):
    monkeypatch.delenv("DLBOOK_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dlbook.device().type == "cuda"


def test_forced_cuda_device_is_checked_against_the_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("DLBOOK_DEVICE", "cuda:1")
    assert dlbook.device() == torch.device("cuda:1")
    monkeypatch.setenv("DLBOOK_DEVICE", "cuda:2")
    with pytest.raises(ValueError, match=r"available here: cpu, cuda, cuda:0, cuda:1\b"):
        dlbook.device()


@pytest.mark.parametrize("name", ["gpu", "CPU", "auto", "cuda", "mps", "cuda:x", " cpu"])
def test_an_unusable_device_lists_the_choices(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv("DLBOOK_DEVICE", name)
    with pytest.raises(ValueError) as info:
        dlbook.device()
    message = str(info.value)
    assert f"DLBOOK_DEVICE={name!r}" in message
    assert "valid choices are cpu, cuda, cuda:N, mps" in message
    assert message.endswith("available here: cpu")


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
    c = torch.rand(2, generator=dlbook.seed(np.int64(7)))
    assert torch.equal(c, torch.rand(2, generator=dlbook.seed(7)))


def test_bad_inputs(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)

    def forced(name: str) -> torch.device:
        monkeypatch.setenv("DLBOOK_DEVICE", name)
        return dlbook.device()

    check_bad_inputs([
        (lambda: dlbook.seed(1.5), TypeError, "seed n"),
        (lambda: dlbook.seed("3"), TypeError, "seed n"),
        (lambda: dlbook.seed(None), TypeError, "seed n"),
        (lambda: dlbook.seed(True), TypeError, "seed n"),
        (lambda: dlbook.seed(torch.tensor(3)), TypeError, "seed n"),
        (lambda: dlbook.seed(-1), ValueError, "seed n"),
        (lambda: dlbook.seed(2**63), ValueError, "seed n"),
        (lambda: forced("gpu"), ValueError, "DLBOOK_DEVICE"),
        (lambda: forced("CPU"), ValueError, "DLBOOK_DEVICE"),
        (lambda: forced("auto"), ValueError, "DLBOOK_DEVICE"),
        (lambda: forced("cuda"), ValueError, "DLBOOK_DEVICE"),
        (lambda: forced("cuda:0"), ValueError, "DLBOOK_DEVICE"),
        (lambda: forced("mps"), ValueError, "DLBOOK_DEVICE"),
    ])
