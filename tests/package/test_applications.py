"""dlbook.applications: the generators keep their promises, the hand-derived formulas match
autograd and simulation, and each model beats its baseline on held-out data."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlbook.applications import (FactorizationConfig, MatrixFactorization, MotifCNN, MotifCNNConfig,
                                 TrajectoryGRU, TrajectoryGRUConfig, constant_turn, constant_velocity,
                                 constant_velocity_error, decode_dna, displacement_errors,
                                 factorization_gradients, factorization_loss, kmer_counts, low_rank_ratings,
                                 motif_input_gradient, one_hot_dna, planted_motif, rmse, saliency,
                                 train_factorization, turning_agents)
from dlbook.train import fit
from tests.helpers import check_bad_inputs, check_gradient


# --- genomics ---------------------------------------------------------------

def test_one_hot_round_trip():
    x = one_hot_dna("ACGTTGCA")
    assert x.shape == (4, 8) and torch.equal(x.sum(0), torch.ones(8))
    assert x[:, 0].tolist() == [1, 0, 0, 0] and x[:, 3].tolist() == [0, 0, 0, 1]
    assert decode_dna(x) == "ACGTTGCA"


def test_planted_motif_is_where_it_says_and_classes_are_balanced():
    data = planted_motif(400, length=60, motif="TGACTCA", seed=3)
    m = len(data.motif)
    assert data.x.shape == (400, 4, 60) and data.y.sum() == 200
    assert torch.equal(data.x.sum(1), torch.ones(400, 60))  # one-hot everywhere
    for x, y, s in zip(data.x, data.y, data.start):
        text = decode_dna(x)
        word = text[s:s + m]
        if y == 1:
            assert word == "TGACTCA"
        else:
            assert sorted(word) == sorted("TGACTCA") and "TGACTCA" not in text
    # same expected composition: the mean base counts of the two classes differ by noise only
    counts = data.x.sum(2)  # (N, 4)
    gap = (counts[data.y == 1].mean(0) - counts[data.y == 0].mean(0)).abs().max()
    assert gap < 1.0
    again = planted_motif(400, length=60, motif="TGACTCA", seed=3)
    assert torch.equal(again.x, data.x) and torch.equal(again.start, data.start)
    assert not torch.equal(planted_motif(400, length=60, seed=4).x, data.x)


def test_kmer_counts_by_hand():
    x = one_hot_dna("AACGA")[None]
    assert kmer_counts(x, 1)[0].tolist() == [3, 1, 1, 0]
    two = kmer_counts(x, 2)[0]  # AA, AC, CG, GA at indices 0, 1, 6, 8
    assert two.sum() == 4 and [int(two[i]) for i in (0, 1, 6, 8)] == [1, 1, 1, 1]


def test_motif_gradient_by_hand_equals_autograd():
    torch.manual_seed(0)
    model = MotifCNN(MotifCNNConfig(filters=5, kernel_size=4)).double()
    x = planted_motif(6, length=20, seed=1).x.double()
    check_gradient(lambda x: model(x).sum(), lambda x: motif_input_gradient(model, x), [x])
    # saliency is gradient times input, summed over channels
    s = saliency(model, x)
    torch.testing.assert_close(s, (motif_input_gradient(model, x) * x).sum(1))


def test_motif_cnn_beats_composition_and_looks_at_the_motif():
    train, test = planted_motif(1200, length=60, seed=0), planted_motif(400, length=60, seed=1)
    torch.manual_seed(0)
    model = MotifCNN()
    loader = DataLoader(TensorDataset(train.x, train.y), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    fit(model, loader, loss_fn=F.binary_cross_entropy_with_logits, epochs=6, progress="none", device="cpu",
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2))
    with torch.no_grad():
        accuracy = ((model(test.x) > 0).float() == test.y).float().mean()
    assert accuracy > 0.9
    positive = test.y == 1
    peak = saliency(model, test.x[positive]).argmax(1)
    start = test.start[positive]
    assert ((peak >= start) & (peak < start + 7)).float().mean() > 0.8


# --- recommendation ---------------------------------------------------------

def test_ratings_are_low_rank_plus_noise():
    data = low_rank_ratings(60, 40, rank=2, density=0.5, noise=0.2, seed=0)
    s = torch.linalg.svdvals(data.full)
    assert s[4] < 1e-4 * s[0] and s[3] > 1e-2 * s[0]  # rank 2 + the rank-2 bias terms
    u, i, r = (torch.cat(parts) for parts in zip(data.train, data.test))
    residual = r - data.full[u, i]
    assert abs(residual.std().item() - 0.2) < 0.02 and abs(residual.mean().item()) < 0.02
    assert len(set(zip(u.tolist(), i.tolist()))) == len(u)  # no pair twice, so no test pair in train
    assert abs(len(data.test[0]) / len(u) - 0.2) < 0.01
    again = low_rank_ratings(60, 40, rank=2, density=0.5, noise=0.2, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(again.train, data.train))


@pytest.mark.parametrize("rank,lam", [(0, 0.0), (1, 0.1), (4, 0.05)])
def test_factorization_gradient_by_hand_equals_autograd(rank, lam):
    data = low_rank_ratings(12, 9, rank=2, density=0.6, seed=rank)
    model = MatrixFactorization(FactorizationConfig(12, 9, rank, init_scale=0.5),
                                generator=torch.Generator().manual_seed(0)).double()
    u, i, r = data.train
    params = [model.b_user, model.b_item, model.P, model.Q]
    with torch.no_grad():
        for p in params:
            p.normal_(generator=torch.Generator().manual_seed(1))
    loss = factorization_loss(model, u, i, r.double(), lam)
    autograd = torch.autograd.grad(loss, params)
    for a, h in zip(autograd, factorization_gradients(model, u, i, r.double(), lam)):
        torch.testing.assert_close(h, a, atol=1e-12, rtol=1e-10)


def test_factorization_beats_biases_on_held_out_ratings():
    data = low_rank_ratings(seed=5)
    errors = {}
    for rank in (0, 3):
        model = MatrixFactorization(FactorizationConfig(300, 200, rank),
                                    generator=torch.Generator().manual_seed(0))
        losses = train_factorization(model, *data.train, steps=300)
        assert losses[-1] < losses[0]
        with torch.no_grad():
            errors[rank] = rmse(model(*data.test[:2]), data.test[2])
    assert errors[3] < 0.7 * errors[0]
    assert errors[3] > 0.9 * data.noise  # nothing beats the noise


# --- behaviour prediction ---------------------------------------------------

def test_agents_follow_their_dynamics():
    d = turning_agents(20, heading_noise=0.0, seed=2, dtype=torch.float64)
    steps = d.positions.diff(dim=1)
    torch.testing.assert_close(steps.norm(dim=2), d.speed[:, None].expand(-1, 19))
    heading = torch.atan2(steps[..., 1], steps[..., 0])
    turn = heading.diff(dim=1)
    turn = torch.atan2(turn.sin(), turn.cos())
    torch.testing.assert_close(turn, d.turn_rate[:, None].expand(-1, 18))
    assert d.history.shape == (20, 8, 2) and d.future.shape == (20, 12, 2)
    noisy = turning_agents(2000, heading_noise=0.1, max_turn=0.0, seed=0, dtype=torch.float64)
    s = noisy.positions.diff(dim=1)
    h = torch.atan2(s[..., 1], s[..., 0]).diff(dim=1)
    assert abs(torch.atan2(h.sin(), h.cos()).std().item() - 0.1) < 0.005
    assert torch.equal(turning_agents(5, seed=1).positions, turning_agents(5, seed=1).positions)


def test_constant_velocity_error_formula_and_constant_turn_are_exact_without_noise():
    d = turning_agents(30, heading_noise=0.0, seed=0, dtype=torch.float64)
    error = (constant_velocity(d.history, 12) - d.future).norm(dim=2)
    torch.testing.assert_close(error, constant_velocity_error(d.speed, d.turn_rate, 12))
    torch.testing.assert_close(constant_turn(d.history, 12), d.future)
    straight = turning_agents(5, max_turn=0.0, heading_noise=0.0, dtype=torch.float64)
    torch.testing.assert_close(constant_velocity(straight.history, 12), straight.future)
    # for small omega the error grows like v omega k^2 / 2
    e = constant_velocity_error(torch.tensor([1.0]), torch.tensor([1e-3]), 10)[0, -1]
    assert math.isclose(e.item(), 1e-3 * sum(range(1, 11)), rel_tol=1e-3)


def test_trajectory_gru_starts_at_the_baseline_and_beats_it():
    train, test = turning_agents(2000, seed=0), turning_agents(500, seed=1)
    torch.manual_seed(0)
    model = TrajectoryGRU(TrajectoryGRUConfig(predicted=12, hidden_size=16))
    with torch.no_grad():
        start = model(test.history)
    torch.testing.assert_close(start, constant_velocity(test.history, 12), atol=1e-4, rtol=0)
    loader = DataLoader(TensorDataset(train.history, train.future), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    fit(model, loader, loss_fn=F.mse_loss, epochs=5, progress="none", device="cpu",
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2))
    with torch.no_grad():
        ade, _ = displacement_errors(model(test.history), test.future)
    baseline, _ = displacement_errors(constant_velocity(test.history, 12), test.future)
    assert ade.mean() < 0.5 * baseline.mean()


def test_bad_inputs():
    model = MatrixFactorization(FactorizationConfig(3, 4, 2))
    u, i, r = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4.0, 3.0])
    history = torch.zeros(2, 8, 2)
    check_bad_inputs([
        (lambda: one_hot_dna("ACGN"), ValueError, "seq"),
        (lambda: one_hot_dna(b"ACG"), TypeError, "seq"),
        (lambda: decode_dna(torch.zeros(3, 5)), ValueError, "x"),
        (lambda: planted_motif(1), ValueError, "n"),
        (lambda: planted_motif(10, length=5), ValueError, "length"),
        (lambda: planted_motif(10, motif="acg"), ValueError, "motif"),
        (lambda: planted_motif(10, seed=-1), ValueError, "seed"),
        (lambda: kmer_counts(torch.zeros(2, 4, 5), 6), ValueError, "k"),
        (lambda: kmer_counts(torch.zeros(2, 3, 5), 2), ValueError, "x"),
        (lambda: MotifCNNConfig(filters=0), ValueError, "filters"),
        (lambda: MotifCNN()(torch.zeros(2, 4, 5)), ValueError, "x"),
        (lambda: MotifCNN()(torch.zeros(2, 5, 20)), ValueError, "x"),
        (lambda: motif_input_gradient("model", torch.zeros(1, 4, 20)), TypeError, "model"),
        (lambda: saliency(MotifCNN(), torch.zeros(1, 4, 20, dtype=torch.long)), TypeError, "x"),
        (lambda: low_rank_ratings(rank=0), ValueError, "rank"),
        (lambda: low_rank_ratings(density=0.0), ValueError, "density"),
        (lambda: low_rank_ratings(noise=-1.0), ValueError, "noise"),
        (lambda: low_rank_ratings(test_fraction=1.0), ValueError, "test_fraction"),
        (lambda: FactorizationConfig(3, 4, rank=-1), ValueError, "rank"),
        (lambda: FactorizationConfig(0, 4), ValueError, "n_users"),
        (lambda: model(torch.tensor([3]), torch.tensor([0])), ValueError, "users"),
        (lambda: model(u, i.float()), TypeError, "items"),
        (lambda: model(u, i[:1]), ValueError, "same length"),
        (lambda: factorization_loss(model, u, i, r[:1]), ValueError, "same length"),
        (lambda: factorization_loss(model, u, i, r, -0.1), ValueError, "weight_decay"),
        (lambda: factorization_gradients(model, u, i, torch.tensor([1.0, math.nan])), ValueError, "ratings"),
        (lambda: train_factorization(torch.nn.Linear(2, 2), u, i, r), TypeError, "model"),
        (lambda: train_factorization(model, u, i, r, steps=0), ValueError, "steps"),
        (lambda: rmse(r, r[:1]), ValueError, "same length"),
        (lambda: turning_agents(0), ValueError, "n"),
        (lambda: turning_agents(5, observed=1), ValueError, "observed"),
        (lambda: turning_agents(5, speed=(2.0, 1.0)), ValueError, "speed"),
        (lambda: turning_agents(5, speed=1.0), TypeError, "speed"),
        (lambda: turning_agents(5, heading_noise=-0.1), ValueError, "heading_noise"),
        (lambda: constant_velocity(torch.zeros(2, 8, 3), 4), ValueError, "history"),
        (lambda: constant_velocity(torch.zeros(2, 1, 2), 4), ValueError, "history"),
        (lambda: constant_velocity(history, 0), ValueError, "steps"),
        (lambda: constant_turn(history, 4, torch.zeros(3)), ValueError, "turn_rate"),
        (lambda: constant_velocity_error(torch.ones(2), torch.ones(3), 4), ValueError, "same length"),
        (lambda: displacement_errors(torch.zeros(2, 4, 2), torch.zeros(2, 5, 2)), ValueError, "future"),
        (lambda: TrajectoryGRUConfig(hidden_size=0), ValueError, "hidden_size"),
        (lambda: TrajectoryGRU()(torch.zeros(2, 8)), ValueError, "history"),
    ])
