"""dlbook.embeddings: pairs and counts, the SGNS gradient, PPMI-SVD, purity, learning on planted classes."""

from __future__ import annotations

import math

import pytest
import torch

from dlbook.embeddings import (SkipGram, SkipGramConfig, cooccurrence, nearest_neighbours, neighbour_purity,
                               noise_distribution, ppmi, ppmi_svd, sgns_gradients, sgns_loss, skipgram_pairs,
                               template_corpus, train_skipgram)
from tests.helpers import check_bad_inputs, check_gradient


def test_pairs_and_counts_by_hand():
    ids = torch.tensor([0, 1, 2, 1])
    c, o = skipgram_pairs(ids, 1)
    assert sorted(zip(c.tolist(), o.tolist())) == sorted([(0, 1), (1, 2), (2, 1), (1, 0), (2, 1), (1, 2)])
    c2, o2 = skipgram_pairs(ids, 2, skip=0)
    assert 0 not in c2.tolist() and 0 not in o2.tolist() and len(c2) == 6
    counts = cooccurrence(c, o, 3)
    assert counts.tolist() == [[0, 1, 0], [1, 0, 2], [0, 2, 0]] and torch.equal(counts, counts.T)


@pytest.mark.parametrize("B,K,D", [(1, 1, 1), (4, 5, 3), (16, 2, 8)])
def test_sgns_gradient_by_hand_equals_autograd(B, K, D):
    g = torch.Generator().manual_seed(B * 100 + K)
    inputs = [torch.randn(B, D, generator=g), torch.randn(B, D, generator=g), torch.randn(B, K, D, generator=g)]
    check_gradient(sgns_loss, sgns_gradients, inputs)


def test_initial_loss_is_k_plus_one_log_two_and_model_uses_both_tables():
    model = SkipGram(SkipGramConfig(10, dim=4, negatives=3))
    loss = model(torch.tensor([1, 2]), torch.tensor([3, 4]), torch.tensor([[5, 6, 7], [8, 9, 0]]))
    assert math.isclose(loss.item(), 4 * math.log(2), rel_tol=1e-6)
    loss.backward()
    assert model.center.weight.grad.abs().sum() == 0  # zero context vectors pass no gradient to centers
    assert model.context.weight.grad[3].abs().sum() > 0


def test_ppmi_matches_the_formula_and_svd_reconstructs_it():
    counts = torch.tensor([[4.0, 1.0, 0.0], [1.0, 2.0, 3.0], [0.0, 3.0, 1.0]], dtype=torch.float64)
    M = ppmi(counts, power=1.0)
    N = counts.sum()
    for w in range(3):
        for c in range(3):
            if counts[w, c] == 0:
                assert M[w, c] == 0
            else:
                pmi = math.log(counts[w, c] * N / (counts[w].sum() * counts[:, c].sum()))
                assert math.isclose(M[w, c].item(), max(pmi, 0.0), abs_tol=1e-12)
    E = ppmi_svd(counts, 3, power=1.0)
    # with all directions kept and a symmetric PPMI, E E^T has the singular values of PPMI
    torch.testing.assert_close(torch.linalg.svdvals(E @ E.T), torch.linalg.svdvals(M))
    assert noise_distribution(torch.tensor([1.0, 16.0]), power=0.5).tolist() == [0.2, 0.8]


def test_nearest_neighbours_and_purity():
    E = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert nearest_neighbours(E, torch.tensor([0, 2]), 1).tolist() == [[1], [3]]
    assert neighbour_purity(E, torch.tensor([0, 0, 1, 1]), k=1) == 1.0
    assert neighbour_purity(E, torch.tensor([0, 1, 0, 1]), k=1) == 0.0


def test_template_corpus_is_deterministic_and_labelled():
    a, b = template_corpus(50, seed=1), template_corpus(50, seed=1)
    assert a.words == b.words and torch.equal(a.ids, b.ids)
    assert len(a.classes) == 48 and a.vocab[0] == "cat" and a.class_names[0] == "animal"
    assert [a.vocab[i] for i in a.ids[:20].tolist()] == list(a.words[:20])
    assert template_corpus(50, seed=2).words != a.words


@pytest.mark.slow
def test_skipgram_recovers_planted_classes():
    planted = template_corpus(600, seed=0)
    c, o = skipgram_pairs(planted.ids, 2)
    torch.manual_seed(0)
    model = SkipGram(SkipGramConfig(len(planted.vocab), dim=16))
    losses = train_skipgram(model, c, o, noise_distribution(torch.bincount(planted.ids).double()), epochs=4,
                            batch_size=256, generator=torch.Generator().manual_seed(0))
    n = len(planted.classes)
    assert losses[-1] < losses[0] - 1
    assert neighbour_purity(model.embeddings[:n], planted.classes, k=7) > 0.6
    assert neighbour_purity(ppmi_svd(cooccurrence(c, o, len(planted.vocab)), 16)[:n], planted.classes, k=7) > 0.6


def test_bad_inputs():
    model = SkipGram(SkipGramConfig(10, dim=4, negatives=2))
    ids = torch.tensor([1, 2, 3])
    E = torch.randn(5, 3)
    noise = torch.full((10,), 0.1)
    check_bad_inputs([
        (lambda: skipgram_pairs(ids.float(), 2), TypeError, "ids"),
        (lambda: skipgram_pairs(ids.reshape(1, 3), 2), ValueError, "ids"),
        (lambda: skipgram_pairs(ids[:0], 2), ValueError, "ids"),
        (lambda: skipgram_pairs(-ids, 2), ValueError, "ids"),
        (lambda: skipgram_pairs(ids, 0), ValueError, "window"),
        (lambda: skipgram_pairs([1, 2], 1), TypeError, "ids"),
        (lambda: cooccurrence(ids, ids[:2], 5), ValueError, "same length"),
        (lambda: cooccurrence(ids, ids, 3), ValueError, "centers"),
        (lambda: cooccurrence(ids, ids, True), TypeError, "vocab_size"),
        (lambda: noise_distribution(torch.tensor([-1.0, 2.0])), ValueError, "counts"),
        (lambda: noise_distribution(torch.tensor([1, 2])), TypeError, "counts"),
        (lambda: noise_distribution(torch.ones(3), power=-1), ValueError, "power"),
        (lambda: sgns_loss(torch.randn(2, 3), torch.randn(3, 3), torch.randn(2, 1, 3)), ValueError, "u_o"),
        (lambda: sgns_loss(torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3)), ValueError, "u_neg"),
        (lambda: sgns_loss(torch.randn(2, 3), torch.ones(2, 3, dtype=torch.long), torch.randn(2, 1, 3)), TypeError, "u_o"),
        (lambda: sgns_gradients(None, torch.randn(2, 3), torch.randn(2, 1, 3)), TypeError, "v_c"),
        (lambda: SkipGramConfig(0), ValueError, "vocab_size"),
        (lambda: SkipGramConfig(10, dim=2.0), TypeError, "dim"),
        (lambda: SkipGramConfig(10, negatives=0), ValueError, "negatives"),
        (lambda: model(ids, ids, torch.ones(2, 2, dtype=torch.long)), ValueError, "noise"),
        (lambda: model(ids + 10, ids, torch.ones(3, 2, dtype=torch.long)), ValueError, "centers"),
        (lambda: model(ids, ids.float(), torch.ones(3, 2, dtype=torch.long)), TypeError, "contexts"),
        (lambda: train_skipgram(model, ids, ids, noise[:5]), ValueError, "noise"),
        (lambda: train_skipgram(model, ids, ids[:2], noise), ValueError, "same length"),
        (lambda: train_skipgram(model, ids, ids, noise, lr=0), ValueError, "lr"),
        (lambda: train_skipgram(model, ids, ids, noise, epochs=0), ValueError, "epochs"),
        (lambda: ppmi(torch.ones(3)), ValueError, "counts"),
        (lambda: ppmi(torch.zeros(3, 3)), ValueError, "counts"),
        (lambda: ppmi(torch.full((2, 2), float("nan"))), ValueError, "counts"),
        (lambda: ppmi_svd(torch.ones(3, 3), 4), ValueError, "dim"),
        (lambda: nearest_neighbours(E, torch.tensor([7]), 2), ValueError, "query"),
        (lambda: nearest_neighbours(E, torch.tensor([1]), 5), ValueError, "k"),
        (lambda: nearest_neighbours(E[0], torch.tensor([1]), 2), ValueError, "E"),
        (lambda: neighbour_purity(E, torch.tensor([0, 1]), 1), ValueError, "same length"),
        (lambda: neighbour_purity(E, torch.rand(5), 1), TypeError, "classes"),
        (lambda: template_corpus(0), ValueError, "n_sentences"),
        (lambda: template_corpus(10, noise=1.5), ValueError, "noise"),
    ])
