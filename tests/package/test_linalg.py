"""Part 1, "Tensors and linear algebra": strides, broadcasting, eigendecomposition, the SVD.

The solver and the norms are tested in ``test_foundations.py``; this file tests the
row-major strides and the broadcasting rule against PyTorch, and the claims of the
page's last section against ``torch.linalg``.
"""

from __future__ import annotations

import pytest
import torch

from dlbook.linalg import broadcast_shapes, inverse, low_rank, row_major_strides
from tests.helpers import check_bad_inputs

f64 = torch.float64


def _random(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, dtype=f64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("seed", range(3))
def test_positive_definite_iff_all_eigenvalues_positive(seed):
    X = _random((12, 5), seed)
    A = X.T @ X + 0.1 * torch.eye(5, dtype=f64)
    lam, Q = torch.linalg.eigh(A)
    torch.testing.assert_close(Q @ torch.diag(lam) @ Q.T, A)  # A = Q Lambda Q^T
    for shift in [0.0, (lam[0] + lam[1]).item() / 2, lam[-1].item() + 1.0]:
        B = A - shift * torch.eye(5, dtype=f64)
        by_eigenvalues = bool((torch.linalg.eigvalsh(B) > 0).all())
        by_cholesky = torch.linalg.cholesky_ex(B).info.item() == 0
        assert by_eigenvalues == by_cholesky
        # x^T B x = sum_i lambda_i y_i^2: its sign on the eigenvector of lambda_min decides
        q = Q[:, 0]
        assert (q @ B @ q > 0) == by_eigenvalues


@pytest.mark.parametrize("shape", [(7, 4), (4, 7), (5, 5)])
def test_svd_relations(shape):
    A = _random(shape, 1)
    S = torch.linalg.svdvals(A)
    # sigma_i^2 are the eigenvalues of A^T A (and of A A^T), largest first
    small = A.T @ A if shape[0] >= shape[1] else A @ A.T
    torch.testing.assert_close(S**2, torch.linalg.eigvalsh(small).flip(0))
    torch.testing.assert_close(S[0], torch.linalg.matrix_norm(A, ord=2))
    torch.testing.assert_close(S.norm(), torch.linalg.matrix_norm(A))  # |A|_F^2 = sum sigma_i^2
    if shape[0] == shape[1]:
        torch.testing.assert_close(S[0] / S[-1], torch.linalg.cond(A))
        torch.testing.assert_close(1 / S[-1], torch.linalg.matrix_norm(inverse(A), ord=2))


@pytest.mark.parametrize("shape", [(9, 4), (4, 9), (6, 6)])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_low_rank_has_rank_k_and_the_eckart_young_error(shape, k):
    A = _random(shape, 2)
    A_k = low_rank(A, k)
    S = torch.linalg.svdvals(A)
    assert A_k.shape == A.shape
    assert torch.linalg.matrix_rank(A_k).item() == k
    # |A - A_k|_F = sqrt(sum_{i > k} sigma_i^2), |A - A_k|_2 = sigma_{k+1}
    torch.testing.assert_close(torch.linalg.matrix_norm(A - A_k), S[k:].norm())
    spectral = torch.linalg.matrix_norm(A - A_k, ord=2)
    torch.testing.assert_close(spectral, S[k] if k < len(S) else torch.zeros((), dtype=f64))


def test_low_rank_keeps_a_matrix_of_that_rank():
    A = _random((8, 3), 3) @ _random((3, 6), 4)  # rank 3
    torch.testing.assert_close(low_rank(A, 3), A)
    assert torch.linalg.matrix_norm(A - low_rank(A, 2)) > 1e-3


@pytest.mark.parametrize("seed", range(3))
def test_no_random_rank_k_matrix_beats_low_rank(seed):
    A, k = _random((30, 10), 5), 3
    best = torch.linalg.matrix_norm(A - low_rank(A, k))
    gen = torch.Generator().manual_seed(100 + seed)
    for _ in range(20):
        P, _ = torch.linalg.qr(torch.randn(10, k, dtype=f64, generator=gen))  # (10, k)
        assert torch.linalg.matrix_norm(A - A @ P @ P.T) > best
        # the best matrix with these row directions is A P P^T; a random mix is worse still
        W = torch.randn(30, k, dtype=f64, generator=gen)
        assert torch.linalg.matrix_norm(A - W @ P.T) > best


def test_bad_inputs_low_rank():
    A = torch.ones(4, 3, dtype=f64)
    check_bad_inputs([
        (lambda: low_rank(torch.ones(3, dtype=f64), 1), ValueError, "A"),
        (lambda: low_rank(torch.ones(2, 3, 3, dtype=f64), 1), ValueError, "A"),
        (lambda: low_rank([[1.0, 0.0], [0.0, 1.0]], 1), TypeError, "A"),
        (lambda: low_rank(torch.full((2, 2), float("nan")), 1), ValueError, "A"),
        (lambda: low_rank(A, 0), ValueError, "k"),
        (lambda: low_rank(A, 4), ValueError, "k"),
        (lambda: low_rank(A, 1.5), TypeError, "k"),
        (lambda: low_rank(A, True), TypeError, "k"),
    ])


@pytest.mark.parametrize("shape", [(), (7,), (2, 3), (4, 1, 5), (2, 3, 4, 5), (3, 0, 2), (0,), (1, 1, 1)])
def test_row_major_strides_match_a_new_torch_tensor(shape):
    assert row_major_strides(shape) == torch.empty(shape).stride()
    assert row_major_strides(list(shape)) == row_major_strides(torch.Size(shape))


@pytest.mark.parametrize("shape", [(7,), (2, 3), (4, 1, 5), (2, 3, 4, 5)])
def test_flat_index_with_our_strides_finds_every_element(shape):
    # pos(i_1, ..., i_k) = sum_j i_j s_j in a tensor that holds 0, 1, 2, ... in row-major order
    x = torch.arange(torch.Size(shape).numel()).reshape(shape)
    grids = torch.meshgrid(*[torch.arange(n) for n in shape], indexing="ij")
    index = torch.stack(grids, dim=-1).reshape(-1, len(shape))  # (numel, k)
    position = index @ torch.tensor(row_major_strides(shape))
    assert torch.equal(x[tuple(index.T)], position)


def _random_shapes(gen: torch.Generator, count: int) -> list[tuple[int, ...]]:
    shapes = []
    for _ in range(count):
        k = int(torch.randint(0, 5, (), generator=gen))
        shapes.append(tuple(torch.randint(0, 4, (k,), generator=gen).tolist()))
    return shapes


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4])
def test_broadcast_shapes_matches_torch_including_failures(count):
    gen = torch.Generator().manual_seed(count)
    outcomes = set()
    for _ in range(300):
        shapes = _random_shapes(gen, count)
        try:
            expected = tuple(torch.broadcast_shapes(*shapes))
        except RuntimeError:
            with pytest.raises(ValueError, match="must be equal or one of them 1"):
                broadcast_shapes(*shapes)
            outcomes.add("incompatible")
            continue
        assert broadcast_shapes(*shapes) == expected, shapes
        outcomes.add("broadcast")
    assert outcomes == ({"broadcast"} if count < 2 else {"broadcast", "incompatible"})


@pytest.mark.parametrize("shapes", [[(3, 1), (1, 4)], [(5, 1, 2), (3, 1)], [(2,), (4, 3, 1)], [(1,), (2, 1, 3)]])
def test_broadcast_shapes_is_the_shape_of_an_elementwise_result(shapes):
    tensors = [torch.ones(shape) for shape in shapes]
    result = tensors[0] + tensors[1]
    assert broadcast_shapes(*shapes) == tuple(result.shape)
    # broadcasting is expand (stride 0 along stretched axes, no copy) followed by the operation
    expanded = [t.expand(result.shape) for t in tensors]
    assert all(e.data_ptr() == t.data_ptr() for e, t in zip(expanded, tensors))
    assert torch.equal(expanded[0] + expanded[1], result)


def test_broadcast_shapes_names_the_axis_and_both_sizes():
    with pytest.raises(ValueError, match=r"shapes\[1\] = \(4,\).*axis -1 has sizes 4 and 3"):
        broadcast_shapes((2, 3), (4,))
    with pytest.raises(ValueError, match=r"shapes\[2\].*\(5, 2, 3\).*axis -2 has sizes 4 and 2"):
        broadcast_shapes((2, 3), (5, 1, 1), (4, 1))


def test_bad_inputs_strides_and_broadcasting():
    check_bad_inputs([
        (lambda: row_major_strides(6), TypeError, "shape"),
        (lambda: row_major_strides("23"), TypeError, "shape"),
        (lambda: row_major_strides((2, -1)), ValueError, "shape[1]"),
        (lambda: row_major_strides((2, 3.0)), TypeError, "shape[1]"),
        (lambda: broadcast_shapes((2, 3), 3), TypeError, "shapes[1]"),
        (lambda: broadcast_shapes((True, 3)), TypeError, "shapes[0][0]"),
        (lambda: broadcast_shapes((2,), (1, -2)), ValueError, "shapes[1][1]"),
        (lambda: broadcast_shapes((2, 3), (2, 4)), ValueError, "axis -1"),
    ])
