"""Three applications in miniature, on generated data
(Part 14, "Deep learning at work: applications").

Genomics: :func:`planted_motif` generates DNA sequences, half of them carrying a
planted motif; :class:`MotifCNN` (one convolution, a global max pool, a linear
read-out) finds it, and :func:`motif_input_gradient` is the hand-derived
gradient of its score with respect to the one-hot input, the basis of the
gradient-times-input :func:`saliency`. :func:`kmer_counts` gives the count
features of the baselines. Recommendation: :func:`low_rank_ratings` samples a
few ratings of a low-rank preference matrix; :class:`MatrixFactorization` (rank
0 is the biases-only baseline) is trained by :func:`train_factorization` with
the hand-derived :func:`factorization_gradients`. Behaviour prediction:
:func:`turning_agents` generates agents that turn at their own constant rate;
:func:`constant_velocity` is the baseline, :func:`constant_velocity_error` its
exact error, and :class:`TrajectoryGRU` learns a correction to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlbook import _checks as check

__all__ = [
    "NUCLEOTIDES", "MotifData", "one_hot_dna", "decode_dna", "planted_motif", "kmer_counts",
    "MotifCNNConfig", "MotifCNN", "motif_input_gradient", "saliency",
    "Ratings", "low_rank_ratings", "FactorizationConfig", "MatrixFactorization", "factorization_loss",
    "factorization_gradients", "train_factorization", "rmse",
    "Trajectories", "turning_agents", "constant_velocity", "constant_turn", "constant_velocity_error",
    "displacement_errors", "TrajectoryGRUConfig", "TrajectoryGRU",
]

NUCLEOTIDES = "ACGT"


# ---------------------------------------------------------------------------
# Genomics: a planted motif
# ---------------------------------------------------------------------------

def _dna(name: str, text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str of the letters {NUCLEOTIDES}, got {type(text).__name__}")
    if not text or set(text) - set(NUCLEOTIDES):
        raise ValueError(f"{name} must be a non-empty str of the letters {NUCLEOTIDES}, got {text!r}")
    return text


def one_hot_dna(seq: str) -> torch.Tensor:
    """One-hot encoding of a DNA string, channels in the order A, C, G, T: (4, L)."""
    seq = _dna("seq", seq)
    ids = torch.tensor([NUCLEOTIDES.index(c) for c in seq])  # (L,)
    return F.one_hot(ids, 4).T.float()


def decode_dna(x: torch.Tensor) -> str:
    """The DNA string of a one-hot (4, L) tensor."""
    check.expect_shape(check.floating("x", x), "C L", "x", C=4)
    return "".join(NUCLEOTIDES[i] for i in x.argmax(0).tolist())


@dataclass(frozen=True)
class MotifData:
    """Generated sequences: ``x`` (N, 4, L) one-hot, ``y`` (N,) 0/1 float labels, ``start`` (N,)
    where the motif (label 1) or its shuffled decoy (label 0) begins; ``motif`` the planted word."""

    x: torch.Tensor
    y: torch.Tensor
    start: torch.Tensor
    motif: str


def planted_motif(n: int, *, length: int = 100, motif: str = "TGACTCA", seed: int = 0) -> MotifData:
    """``n`` random DNA sequences; half (in random order) carry ``motif`` at a random place.

    The other half carry a shuffle of the motif's letters instead (a decoy), and never the
    motif itself, so both classes have the same expected base composition: only the order
    of the letters tells them apart.
    """
    n = check.positive_int("n", n, minimum=2)
    motif = _dna("motif", motif)
    m = len(motif)
    length = check.positive_int("length", length, minimum=m)
    seed = check.nonnegative_int("seed", seed)
    g = torch.Generator().manual_seed(seed)
    target = torch.tensor([NUCLEOTIDES.index(c) for c in motif])  # (m,)
    y = torch.zeros(n)
    y[torch.randperm(n, generator=g)[: n // 2]] = 1.0
    ids = torch.randint(0, 4, (n, length), generator=g)  # (N, L) background
    start = torch.randint(0, length - m + 1, (n,), generator=g)
    for k in range(n):
        while True:
            word = target if y[k] == 1 else target[torch.randperm(m, generator=g)]
            row = ids[k].clone()
            row[start[k]:start[k] + m] = word
            windows = row.unfold(0, m, 1)  # (L - m + 1, m)
            has_motif = bool((windows == target).all(1).any())
            if y[k] == 1 or not has_motif:
                break
            ids[k] = torch.randint(0, 4, (length,), generator=g)  # a decoy row must not hold the motif
        ids[k] = row
    x = F.one_hot(ids, 4).permute(0, 2, 1).float()  # (N, 4, L)
    return MotifData(x, y, start, motif)


def kmer_counts(x: torch.Tensor, k: int) -> torch.Tensor:
    """How often each of the 4^k words of length k occurs in each one-hot sequence: (N, 4, L) -> (N, 4^k)."""
    sizes = check.expect_shape(check.floating("x", x), "N C L", "x", C=4)
    k = check.positive_int("k", k)
    if k > sizes["L"]:
        raise ValueError(f"k must be at most the sequence length {sizes['L']}, got {k}")
    ids = x.argmax(1)  # (N, L)
    words = ids.unfold(1, k, 1)  # (N, L - k + 1, k)
    # word index = sum_j id_j 4^(k - 1 - j): base-4 digits
    index = (words * 4 ** torch.arange(k - 1, -1, -1, device=x.device)).sum(-1)  # (N, L - k + 1)
    counts = torch.zeros(len(x), 4**k, device=x.device)
    return counts.scatter_add_(1, index, torch.ones_like(index, dtype=counts.dtype))


@dataclass
class MotifCNNConfig:
    """Hyper-parameters of :class:`MotifCNN`."""

    filters: int = 16  # motif detectors
    kernel_size: int = 9  # detector width, a little wider than the motif

    def __post_init__(self) -> None:
        check.positive_int("filters", self.filters)
        check.positive_int("kernel_size", self.kernel_size)


class MotifCNN(nn.Module):
    """Convolution over the sequence, ReLU, global max pool, linear read-out: (N, 4, L) -> (N,) logits."""

    def __init__(self, config: MotifCNNConfig | None = None) -> None:
        super().__init__()
        self.config = config or MotifCNNConfig()
        self.conv = nn.Conv1d(4, self.config.filters, self.config.kernel_size)
        self.readout = nn.Linear(self.config.filters, 1)

    def activations(self, x: torch.Tensor) -> torch.Tensor:
        """Each filter's response at each position: (N, 4, L) -> (N, K, L - kernel_size + 1)."""
        x = check.as_float_like("x", x, self.conv.weight)
        sizes = check.expect_shape(x, "N C L", "x", C=4)
        if sizes["L"] < self.config.kernel_size:
            raise ValueError(f"x must be at least kernel_size={self.config.kernel_size} long, "
                             f"got length {sizes['L']}")
        # a_kt = relu(b_k + sum_c sum_j W_kcj x_c,t+j)
        return torch.relu(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logit of "holds the motif": (N, 4, L) -> (N,)."""
        # f = b + sum_k v_k max_t a_kt
        return self.readout(self.activations(x).amax(dim=2)).squeeze(1)


def motif_input_gradient(model: MotifCNN, x: torch.Tensor) -> torch.Tensor:
    """The gradient of each logit with respect to its input, by hand: (N, 4, L) -> (N, 4, L)."""
    model = check.module("model", model)
    with torch.no_grad():
        a = model.activations(x)  # (N, K, T)
        peak = a.amax(dim=2, keepdim=True)  # (N, K, 1)
        # the max pool passes the gradient to its winning position (shared equally on a tie),
        # and the ReLU passes it only where the winner is positive
        winners = ((a == peak) & (peak > 0)).to(a.dtype)  # (N, K, T)
        winners = winners / winners.sum(dim=2, keepdim=True).clamp(min=1)
        v = model.readout.weight[0]  # (K,)
        # df/dx_c,s = sum_k v_k sum_t winners_kt W_k,c,s-t: a transposed convolution
        return F.conv_transpose1d(v[None, :, None] * winners, model.conv.weight)  # (N, 4, L)


def saliency(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Gradient times input summed over channels, how much each position pushes the logit:
    (N, C, L) -> (N, L)."""
    model = check.module("model", model)
    check.expect_shape(check.floating("x", x), "N C L", "x")
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).sum(), x)  # each logit depends only on its own row
    # s_t = sum_c x_ct df/dx_ct; for one-hot x, the gradient at the base that is present
    return (grad * x).sum(1).detach()


# ---------------------------------------------------------------------------
# Recommendation: matrix factorization
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Ratings:
    """Observed ratings as (user, item, rating) triples split into train and test; ``full`` is the
    noise-free preference matrix (U, I) the ratings were sampled from, ``noise`` their noise level."""

    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    full: torch.Tensor
    rank: int
    noise: float


def low_rank_ratings(n_users: int = 300, n_items: int = 200, *, rank: int = 3, density: float = 0.1,
                     noise: float = 0.3, test_fraction: float = 0.2, seed: int = 0) -> Ratings:
    """A few noisy entries of ``mu + b_u + b_i + p_u . q_i`` with ``rank``-dimensional tastes."""
    n_users, n_items = check.positive_int("n_users", n_users), check.positive_int("n_items", n_items)
    rank = check.positive_int("rank", rank)
    density = check.fraction("density", density, closed="(]")
    noise = check.nonnegative_float("noise", noise)
    test_fraction = check.fraction("test_fraction", test_fraction, closed="()")
    seed = check.nonnegative_int("seed", seed)
    g = torch.Generator().manual_seed(seed)
    mu = 3.5
    b_user, b_item = 0.5 * torch.randn(n_users, generator=g), 0.5 * torch.randn(n_items, generator=g)
    P = torch.randn(n_users, rank, generator=g) / rank**0.25  # (U, r)
    Q = torch.randn(n_items, rank, generator=g) / rank**0.25  # (I, r): p . q has variance 1
    # r_ui = mu + b_u + b_i + p_u . q_i
    full = mu + b_user[:, None] + b_item[None, :] + 0.8 * P @ Q.T  # (U, I)
    observed = (torch.rand(n_users, n_items, generator=g) < density).nonzero()  # (M, 2)
    if len(observed) < 2:
        raise ValueError(f"density={density} leaves fewer than two ratings; raise it or the matrix size")
    users, items = observed[:, 0], observed[:, 1]
    ratings = full[users, items] + noise * torch.randn(len(users), generator=g)
    order = torch.randperm(len(users), generator=g)
    n_test = min(max(1, round(test_fraction * len(users))), len(users) - 1)
    test, train = order[:n_test], order[n_test:]
    return Ratings((users[train], items[train], ratings[train]), (users[test], items[test], ratings[test]),
                   full, rank, noise)


@dataclass
class FactorizationConfig:
    """Hyper-parameters of :class:`MatrixFactorization`; ``rank=0`` keeps only the biases."""

    n_users: int
    n_items: int
    rank: int = 3
    init_scale: float = 0.1  # std of the initial factors; zero would be a saddle point

    def __post_init__(self) -> None:
        check.positive_int("n_users", self.n_users)
        check.positive_int("n_items", self.n_items)
        check.nonnegative_int("rank", self.rank)
        check.nonnegative_float("init_scale", self.init_scale)


class MatrixFactorization(nn.Module):
    """Predicted rating ``mu + b_u + b_i + p_u . q_i`` for (user, item) index pairs: (N,), (N,) -> (N,)."""

    def __init__(self, config: FactorizationConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = c = config
        self.register_buffer("mu", torch.zeros(()))
        self.b_user = nn.Parameter(torch.zeros(c.n_users))
        self.b_item = nn.Parameter(torch.zeros(c.n_items))
        self.P = nn.Parameter(c.init_scale * torch.randn(c.n_users, c.rank, generator=generator))  # (U, r)
        self.Q = nn.Parameter(c.init_scale * torch.randn(c.n_items, c.rank, generator=generator))  # (I, r)

    def _indices(self, users: object, items: object) -> tuple[torch.Tensor, torch.Tensor]:
        check.labels("users", users, self.config.n_users)
        check.labels("items", items, self.config.n_items)
        check.same_length(users=users, items=items)
        return users, items

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Predicted ratings: (N,), (N,) -> (N,)."""
        u, i = self._indices(users, items)
        # r_hat_ui = mu + b_u + b_i + p_u . q_i
        return self.mu + self.b_user[u] + self.b_item[i] + (self.P[u] * self.Q[i]).sum(-1)


def _triples(model: object, users: object, items: object, ratings: object) -> MatrixFactorization:
    if not isinstance(model, MatrixFactorization):
        raise TypeError(f"model must be a MatrixFactorization, got {type(model).__name__}")
    check.finite("ratings", ratings)
    check.expect_shape(ratings, "N", "ratings")
    check.same_length(users=users, ratings=ratings)
    model._indices(users, items)
    return model


def factorization_loss(model: MatrixFactorization, users: torch.Tensor, items: torch.Tensor,
                       ratings: torch.Tensor, weight_decay: float = 0.05) -> torch.Tensor:
    """Mean over the ratings of the squared error plus ``weight_decay`` times the squared norms they touch."""
    model, lam = _triples(model, users, items, ratings), check.nonnegative_float("weight_decay", weight_decay)
    u, i = users, items
    e = ratings - model(u, i)  # (N,) errors
    # L = (1/N) sum_(u,i) [ e_ui^2 + lam (|p_u|^2 + |q_i|^2 + b_u^2 + b_i^2) ]
    penalty = ((model.P[u] ** 2).sum(-1) + (model.Q[i] ** 2).sum(-1)
               + model.b_user[u] ** 2 + model.b_item[i] ** 2)  # (N,)
    return (e**2 + lam * penalty).mean()


def factorization_gradients(model: MatrixFactorization, users: torch.Tensor, items: torch.Tensor,
                            ratings: torch.Tensor, weight_decay: float = 0.05) -> list[torch.Tensor]:
    """The gradient of :func:`factorization_loss` by hand, in the order b_user, b_item, P, Q."""
    model, lam = _triples(model, users, items, ratings), check.nonnegative_float("weight_decay", weight_decay)
    u, i = users, items
    with torch.no_grad():
        e = ratings - model(u, i)  # (N,)
        scale = 2.0 / len(e)
        P_u, Q_i = model.P[u], model.Q[i]  # (N, r) each
        # dL/db_u = (2/N) sum_(i rated by u) (lam b_u - e_ui), and likewise for b_i
        g_bu = torch.zeros_like(model.b_user).index_add_(0, u, scale * (lam * model.b_user[u] - e))
        g_bi = torch.zeros_like(model.b_item).index_add_(0, i, scale * (lam * model.b_item[i] - e))
        # dL/dp_u = (2/N) sum_i (lam p_u - e_ui q_i),  dL/dq_i = (2/N) sum_u (lam q_i - e_ui p_u)
        g_P = torch.zeros_like(model.P).index_add_(0, u, scale * (lam * P_u - e[:, None] * Q_i))
        g_Q = torch.zeros_like(model.Q).index_add_(0, i, scale * (lam * Q_i - e[:, None] * P_u))
    return [g_bu, g_bi, g_P, g_Q]


def train_factorization(model: MatrixFactorization, users: torch.Tensor, items: torch.Tensor,
                        ratings: torch.Tensor, *, weight_decay: float = 0.05, lr: float = 0.05,
                        steps: int = 200) -> list[float]:
    """Full-batch Adam on :func:`factorization_loss`, fed the hand-derived gradients;
    returns the loss every 10 steps and at the end."""
    model = _triples(model, users, items, ratings)
    lr, steps = check.positive_float("lr", lr), check.positive_int("steps", steps)
    lam = check.nonnegative_float("weight_decay", weight_decay)
    with torch.no_grad():
        model.mu.fill_(ratings.mean())  # mu is the training mean, not learned
    params = [model.b_user, model.b_item, model.P, model.Q]
    optimizer = torch.optim.Adam(params, lr=lr)
    losses = []
    for step in range(steps + 1):
        if step % 10 == 0 or step == steps:  # the loss is a forward pass: record it now and then
            with torch.no_grad():
                losses.append(float(factorization_loss(model, users, items, ratings, lam)))
        if step < steps:
            for p, grad in zip(params, factorization_gradients(model, users, items, ratings, lam)):
                p.grad = grad
            optimizer.step()
    return losses


def rmse(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Root mean squared error of two (N,) tensors."""
    prediction, target = check.floating("prediction", prediction), check.floating("target", target)
    check.same_length(prediction=prediction, target=target)
    return float(((prediction - target) ** 2).mean().sqrt())


# ---------------------------------------------------------------------------
# Behaviour prediction: agents that turn
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Trajectories:
    """Agent paths ``positions`` (N, T, 2), with each agent's ``speed`` (N,) and ``turn_rate`` (N,)
    in radians per step; the first ``observed`` steps are the history, the rest the future."""

    positions: torch.Tensor
    speed: torch.Tensor
    turn_rate: torch.Tensor
    observed: int

    @property
    def history(self) -> torch.Tensor:
        """The observed steps: (N, observed, 2)."""
        return self.positions[:, : self.observed]

    @property
    def future(self) -> torch.Tensor:
        """The steps to predict: (N, T - observed, 2)."""
        return self.positions[:, self.observed:]


def turning_agents(n: int, *, observed: int = 8, predicted: int = 12, speed: tuple[float, float] = (0.5, 1.5),
                   max_turn: float = 0.25, heading_noise: float = 0.05, seed: int = 0,
                   dtype: torch.dtype = torch.float32) -> Trajectories:
    """``n`` agents, each with its own speed and constant turn rate, and a little heading noise.

    theta_t = theta_(t-1) + omega + eps_t with eps_t ~ N(0, heading_noise^2), and
    p_t = p_(t-1) + v (cos theta_t, sin theta_t); omega ~ U(-max_turn, max_turn).
    """
    n = check.positive_int("n", n)
    observed = check.positive_int("observed", observed, minimum=2)
    predicted = check.positive_int("predicted", predicted)
    if not isinstance(speed, (tuple, list)) or len(speed) != 2:
        raise TypeError(f"speed must be a (low, high) pair, got {speed!r}")
    low = check.positive_float("speed", speed[0])
    high = check.positive_float("speed", speed[1])
    if high < low:
        raise ValueError(f"speed must be a (low, high) pair with low <= high, got {speed!r}")
    max_turn = check.nonnegative_float("max_turn", max_turn)
    heading_noise = check.nonnegative_float("heading_noise", heading_noise)
    seed = check.nonnegative_int("seed", seed)
    g = torch.Generator().manual_seed(seed)
    T = observed + predicted
    v = low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)  # (N,)
    omega = max_turn * (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1)  # (N,)
    theta0 = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)  # (N,)
    start = 10 * torch.rand(n, 2, generator=g, dtype=torch.float64)  # (N, 2)
    eps = heading_noise * torch.randn(n, T - 1, generator=g, dtype=torch.float64)  # (N, T - 1)
    # theta_t = theta_0 + t omega + sum_(s<=t) eps_s
    theta = theta0[:, None] + torch.arange(1, T, dtype=torch.float64) * omega[:, None] + eps.cumsum(1)
    steps = v[:, None, None] * torch.stack([theta.cos(), theta.sin()], dim=2)  # (N, T - 1, 2)
    positions = torch.cat([start[:, None], start[:, None] + steps.cumsum(1)], dim=1)  # (N, T, 2)
    return Trajectories(positions.to(dtype), v.to(dtype), omega.to(dtype), observed)


def _history(history: object) -> torch.Tensor:
    sizes = check.expect_shape(check.finite("history", history), "N T D", "history", D=2)
    if sizes["T"] < 2:
        raise ValueError(f"history must hold at least 2 positions per agent, got {sizes['T']}")
    return history


def constant_velocity(history: torch.Tensor, steps: int) -> torch.Tensor:
    """Extrapolate the last step: p_(T+k) = p_T + k (p_T - p_(T-1)). (N, T, 2) -> (N, steps, 2)."""
    history, steps = _history(history), check.positive_int("steps", steps)
    last, velocity = history[:, -1], history[:, -1] - history[:, -2]  # (N, 2) each
    k = torch.arange(1, steps + 1, dtype=history.dtype, device=history.device)  # (steps,)
    return last[:, None] + k[None, :, None] * velocity[:, None]


def constant_turn(history: torch.Tensor, steps: int, turn_rate: torch.Tensor | None = None) -> torch.Tensor:
    """Keep the last speed and turn at ``turn_rate`` (N,) per step, estimated from the history when None.
    (N, T, 2) -> (N, steps, 2)."""
    history, steps = _history(history), check.positive_int("steps", steps)
    d = history.diff(dim=1)  # (N, T - 1, 2)
    heading = torch.atan2(d[..., 1], d[..., 0])  # (N, T - 1)
    if turn_rate is None:
        if history.shape[1] < 3:
            raise ValueError("history must hold at least 3 positions to estimate a turn rate")
        # omega_hat = mean of the heading changes, each wrapped to (-pi, pi]
        turn = heading.diff(dim=1)
        turn_rate = torch.atan2(turn.sin(), turn.cos()).mean(1)  # (N,)
    else:
        check.expect_shape(check.finite("turn_rate", turn_rate), "N", "turn_rate", N=len(history))
    k = torch.arange(1, steps + 1, dtype=history.dtype, device=history.device)  # (steps,)
    theta = heading[:, -1:] + k * turn_rate[:, None]  # (N, steps)
    speed = d[:, -1].norm(dim=1)[:, None, None]  # (N, 1, 1)
    # p_(T+k) = p_T + v sum_(j=1..k) (cos, sin)(theta_T + j omega)
    return history[:, -1:] + (speed * torch.stack([theta.cos(), theta.sin()], dim=2)).cumsum(1)


def constant_velocity_error(speed: torch.Tensor, turn_rate: torch.Tensor, steps: int) -> torch.Tensor:
    """Exact error of :func:`constant_velocity` on a noise-free turning agent at k = 1..steps:
    speed (N,), turn_rate (N,) -> (N, steps)."""
    check.expect_shape(check.finite("speed", speed), "N", "speed")
    check.expect_shape(check.finite("turn_rate", turn_rate), "N", "turn_rate")
    check.same_length(speed=speed, turn_rate=turn_rate)
    steps = check.positive_int("steps", steps)
    j = torch.arange(1, steps + 1, dtype=turn_rate.dtype, device=turn_rate.device)  # (steps,)
    angle = turn_rate[:, None] * j  # (N, steps): heading change after j steps
    # e_k = v |sum_(j=1..k) (exp(i j omega) - 1)|
    real, imag = (angle.cos() - 1).cumsum(1), angle.sin().cumsum(1)
    return speed[:, None] * torch.sqrt(real**2 + imag**2)


def displacement_errors(prediction: torch.Tensor, future: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average and final displacement error of each agent (ADE, FDE): (N, S, 2), (N, S, 2) -> (N,), (N,)."""
    sizes = check.expect_shape(check.floating("prediction", prediction), "N S D", "prediction", D=2)
    check.expect_shape(check.floating("future", future), "N S D", "future", **sizes)
    distance = (prediction - future).norm(dim=2)  # (N, S)
    return distance.mean(1), distance[:, -1]


def _rotate(v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each agent's 2-D vectors by its angle: (N, S, 2), cos and sin (N, 1) -> (N, S, 2)."""
    # (x, y) -> (x cos - y sin, x sin + y cos)
    return torch.stack([cos * v[..., 0] - sin * v[..., 1], sin * v[..., 0] + cos * v[..., 1]], dim=2)


@dataclass
class TrajectoryGRUConfig:
    """Hyper-parameters of :class:`TrajectoryGRU`."""

    predicted: int = 12  # future steps to predict
    hidden_size: int = 32

    def __post_init__(self) -> None:
        check.positive_int("predicted", self.predicted)
        check.positive_int("hidden_size", self.hidden_size)


class TrajectoryGRU(nn.Module):
    """A GRU reads the past steps in the agent's own frame and corrects the constant-velocity guess.

    Shapes: history (N, T, 2) positions -> (N, predicted, 2) future positions.
    """

    def __init__(self, config: TrajectoryGRUConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or TrajectoryGRUConfig()
        self.gru = nn.GRU(2, c.hidden_size, batch_first=True)
        self.head = nn.Linear(c.hidden_size, 2 * c.predicted)
        nn.init.zeros_(self.head.weight)  # start exactly at the baseline
        nn.init.zeros_(self.head.bias)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """Predicted future positions: (N, T, 2) -> (N, predicted, 2)."""
        history = check.as_float_like("history", _history(history), self.head.weight)
        S = self.config.predicted
        steps = history.diff(dim=1)  # (N, T - 1, 2)
        # rotate by -phi, phi the last step's heading, so the agent always moves along +x
        phi = torch.atan2(steps[:, -1, 1], steps[:, -1, 0])  # (N,)
        cos, sin = phi.cos()[:, None], phi.sin()[:, None]  # (N, 1) each
        local = _rotate(steps, cos, -sin)  # (N, T - 1, 2)
        _, h = self.gru(local)  # h (1, N, H)
        correction = self.head(h[0]).reshape(-1, S, 2)  # (N, S, 2) in the agent's frame
        k = torch.arange(1, S + 1, dtype=history.dtype, device=history.device)  # (S,)
        guess = torch.zeros_like(correction)
        guess[..., 0] = k * local[:, -1, :1]  # constant velocity: k steps of (v, 0)
        # rotate back by +phi and start from the last position
        world = _rotate(guess + correction, cos, sin)  # (N, S, 2)
        return history[:, -1:] + world
