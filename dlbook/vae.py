"""Latent-variable models and the variational autoencoder (Part 10, "Latent variables and
variational autoencoders").

The two formulas every VAE rests on, :func:`gaussian_kl` (the KL divergence of a
diagonal Gaussian from the standard normal, in closed form) and
:func:`reparameterize` (a differentiable sample), then the model itself
(:class:`VAEConfig`, :class:`VAE`, a one-hidden-layer MLP encoder and decoder
with a Bernoulli likelihood), its loss :func:`negative_elbo` with a ``beta``
weight, the explicit training loop :func:`train_vae` and :func:`heldout_elbo`.
:class:`LinearGaussian` is a latent-variable model whose log-likelihood has a
closed form, to check the ELBO against; :func:`reparameterization_gradients` and
:func:`score_function_gradients` are the two Monte Carlo gradient estimators the
chapter compares.

>>> model = VAE(VAEConfig(input_dim=6, hidden=8, latent=2))
>>> logits, mu, logvar = model(torch.rand(5, 6))
>>> logits.shape, gaussian_kl(mu, logvar).shape
(torch.Size([5, 6]), torch.Size([5]))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dlbook import _checks as check

__all__ = [
    "gaussian_kl", "reparameterize", "VAEConfig", "VAE", "negative_elbo", "ELBOParts", "heldout_elbo",
    "train_vae", "LinearGaussian", "reparameterization_gradients", "score_function_gradients",
]


def _mu_logvar(mu: object, logvar: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``mu`` and ``logvar`` if they are floating tensors of one shape with a last (latent) axis."""
    mu, logvar = check.floating("mu", mu), check.floating("logvar", logvar)
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got mu {tuple(mu.shape)} "
                         f"and logvar {tuple(logvar.shape)}")
    if mu.dim() == 0:
        raise ValueError("mu and logvar need a last (latent) axis, got 0-dimensional tensors")
    return mu, logvar


def _generator(generator: object) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def _normal(shape: torch.Size | tuple[int, ...], like: torch.Tensor,
            generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise of ``shape`` on ``like``'s device and dtype, from ``generator`` if given."""
    if generator is None:
        return torch.randn(shape, dtype=like.dtype, device=like.device)
    # a CPU generator cannot fill a CUDA tensor: draw where the generator lives, then move
    eps = torch.randn(shape, dtype=like.dtype, device=generator.device, generator=generator)
    return eps.to(like.device)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) in nats, summed over the last axis: (..., L) -> (...)."""
    mu, logvar = _mu_logvar(mu, logvar)
    # KL = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """A sample z ~ N(mu, diag(exp(logvar))) written as a differentiable function of mu and logvar.
    Shapes: mu, logvar (..., L) -> z (..., L)."""
    mu, logvar = _mu_logvar(mu, logvar)
    eps = _normal(mu.shape, mu, _generator(generator))  # (..., L), independent of mu and logvar
    # z = mu + sigma * eps, sigma = exp(logvar / 2)
    return mu + torch.exp(0.5 * logvar) * eps


@dataclass
class VAEConfig:
    """Sizes of a variational autoencoder with one hidden layer in the encoder and in the decoder."""

    input_dim: int = 784  # D, pixels of a flattened image
    hidden: int = 256  # H, units in the encoder's and in the decoder's hidden layer
    latent: int = 16  # L, the dimension of z

    def __post_init__(self) -> None:
        for name in ("input_dim", "hidden", "latent"):
            setattr(self, name, check.positive_int(name, getattr(self, name)))


class VAE(nn.Module):
    """Gaussian encoder q(z | x) = N(mu(x), diag(exp(logvar(x)))), Bernoulli decoder p(x | z).

    Shapes: x (B, D) in [0, 1] -> logits (B, D), mu (B, L), logvar (B, L).
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        if not isinstance(config, VAEConfig):
            raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}")
        self.config = config
        D, H, L = config.input_dim, config.hidden, config.latent
        self.encoder = nn.Sequential(nn.Linear(D, H), nn.ReLU())
        self.to_mu = nn.Linear(H, L)
        self.to_logvar = nn.Linear(H, L)  # log sigma^2: any real number is a valid variance
        self.decoder = nn.Sequential(nn.Linear(L, H), nn.ReLU(), nn.Linear(H, D))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The parameters of q(z | x): x (B, D) -> mu (B, L), logvar (B, L)."""
        check.expect_shape(check.floating("x", x), "B D", "x", D=self.config.input_dim)
        h = self.encoder(x)  # (B, H)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The logits of p(x | z), one Bernoulli per pixel: z (B, L) -> (B, D)."""
        check.expect_shape(check.floating("z", z), "B L", "z", L=self.config.latent)
        return self.decoder(z)

    def forward(self, x: torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator)  # (B, L), one sample per example
        return self.decode(z), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixel probabilities sigmoid(decode(z)) for n draws z ~ N(0, I): (n, D)."""
        n = check.positive_int("n", n)
        weight = self.to_mu.weight
        z = _normal((n, self.config.latent), weight, _generator(generator))  # (n, L) from the prior
        return torch.sigmoid(self.decode(z))


def negative_elbo(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
                  beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loss: batch mean of reconstruction + beta * KL, with both terms per example (nats).

    Shapes: x, logits (B, D), mu, logvar (B, L) -> loss (), reconstruction (B,), kl (B,).
    """
    sizes = check.expect_shape(check.floating("x", x), "B D", "x")
    check.expect_shape(check.floating("logits", logits), "B D", "logits", **sizes)
    mu, logvar = _mu_logvar(mu, logvar)
    check.expect_shape(mu, "B L", "mu", B=sizes["B"])
    beta = check.nonnegative_float("beta", beta)
    # -log p(x | z) = -sum_d [x_d log p_d + (1 - x_d) log(1 - p_d)], p_d = sigmoid(logit_d)
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)  # (B,)
    kl = gaussian_kl(mu, logvar)  # (B,)
    # -ELBO_beta = E_q[-log p(x | z)] + beta KL(q(z | x) || p(z)), one sample of z for the expectation
    return (reconstruction + beta * kl).mean(), reconstruction, kl


class ELBOParts(NamedTuple):
    """Per-example averages in nats: ``elbo = -(reconstruction + kl)``."""

    elbo: float
    reconstruction: float
    kl: float


def _model(model: object) -> VAE:
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a dlbook.vae.VAE, got {type(model).__name__}")
    return model


def _data(X: object, model: VAE) -> torch.Tensor:
    X = check.finite("X", X)
    check.expect_shape(X, "N D", "X", D=model.config.input_dim)
    if bool((X < 0).any()) or bool((X > 1).any()):
        raise ValueError("X must hold pixel values in [0, 1] (Bernoulli targets), "
                         f"got values in [{X.min().item():.3g}, {X.max().item():.3g}]")
    return X


@torch.no_grad()
def heldout_elbo(model: VAE, X: torch.Tensor, *, samples: int = 1, batch_size: int = 1024,
                 generator: torch.Generator | None = None) -> ELBOParts:
    """The ELBO (beta = 1) per example on X (N, D), its reconstruction and KL terms, averaging
    the reconstruction over ``samples`` draws of z per example."""
    model, X = _model(model), _data(X, model)
    samples, batch_size = check.positive_int("samples", samples), check.positive_int("batch_size", batch_size)
    generator = _generator(generator)
    was_training = model.training
    model.eval()
    device = model.to_mu.weight.device
    reconstruction = kl = 0.0
    for start in range(0, len(X), batch_size):
        x = X[start:start + batch_size].to(device)  # (B, D)
        mu, logvar = model.encode(x)
        for _ in range(samples):
            logits = model.decode(reparameterize(mu, logvar, generator))
            _, rec, kl_b = negative_elbo(x, logits, mu, logvar)
            reconstruction += rec.sum().item() / samples
        kl += kl_b.sum().item()
    model.train(was_training)
    reconstruction, kl = reconstruction / len(X), kl / len(X)
    return ELBOParts(-(reconstruction + kl), reconstruction, kl)


def train_vae(model: VAE, X: torch.Tensor, *, epochs: int = 10, batch_size: int = 128, lr: float = 1e-3,
              beta: float = 1.0, generator: torch.Generator | None = None) -> list[float]:
    """Adam on -ELBO_beta over shuffled mini-batches of X (N, D); returns the mean loss of each epoch."""
    model, X = _model(model), _data(X, model)
    epochs, batch_size = check.positive_int("epochs", epochs), check.positive_int("batch_size", batch_size)
    beta, generator = check.nonnegative_float("beta", beta), _generator(generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=check.positive_float("lr", lr))
    device = model.to_mu.weight.device
    model.train()
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=generator)
        total = 0.0
        for start in range(0, len(X), batch_size):
            x = X[order[start:start + batch_size]].to(device)  # (B, D)
            loss, _, _ = negative_elbo(x, *model(x, generator), beta=beta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        history.append(total / len(X))
    return history


class LinearGaussian:
    """z ~ N(0, I_L), x | z ~ N(W z + b, sigma^2 I_D): a latent-variable model with an exact log p(x).

    Shapes: W (D, L), b (D,).
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor, sigma: float) -> None:
        self.W = check.finite("W", W)
        sizes = check.expect_shape(W, "D L", "W")
        self.b = check.finite("b", b)
        check.expect_shape(b, "D", "b", D=sizes["D"])
        self.sigma = check.positive_float("sigma", sigma)

    def _x(self, x: object) -> torch.Tensor:
        x = check.finite("x", x)
        check.expect_shape(x, "B D", "x", D=self.W.shape[0])
        return x

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z): x (B, D), z (..., B, L) -> (..., B)."""
        x = self._x(x)
        z = check.floating("z", z)
        if z.dim() < 2 or z.shape[-2:] != (x.shape[0], self.W.shape[1]):
            raise ValueError(f"expected z of shape (..., {x.shape[0]}, {self.W.shape[1]}), got {tuple(z.shape)}")
        D = x.shape[1]
        residual = x - (z @ self.W.T + self.b)  # (..., B, D)
        # log N(x; W z + b, sigma^2 I) = -D/2 log(2 pi sigma^2) - |x - W z - b|^2 / (2 sigma^2)
        return -0.5 * D * math.log(2 * math.pi * self.sigma**2) - residual.pow(2).sum(-1) / (2 * self.sigma**2)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """The exact log p(x), x ~ N(b, W W^T + sigma^2 I): (B, D) -> (B,)."""
        x = self._x(x)
        cov = self.W @ self.W.T + self.sigma**2 * torch.eye(len(self.b), dtype=self.W.dtype)  # (D, D)
        return torch.distributions.MultivariateNormal(self.b, covariance_matrix=cov).log_prob(x)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact p(z | x) = N(m, Sigma): x (B, D) -> m (B, L), Sigma (L, L), the same for every x."""
        x = self._x(x)
        L = self.W.shape[1]
        # Sigma = (I + W^T W / sigma^2)^-1,  m = Sigma W^T (x - b) / sigma^2
        Sigma = torch.linalg.inv(torch.eye(L, dtype=self.W.dtype) + self.W.T @ self.W / self.sigma**2)
        m = (x - self.b) @ self.W @ Sigma / self.sigma**2  # (B, L); Sigma is symmetric
        return m, Sigma


def _toy_problem(f: object, mu: object, logvar: object,
                 samples: object) -> tuple[Callable, torch.Tensor, torch.Tensor, int]:
    if not callable(f):
        raise TypeError(f"f must be a function from z (S, L) to values (S,), got {type(f).__name__}")
    mu, logvar = _mu_logvar(mu, logvar)
    check.expect_shape(mu, "L", "mu")
    return f, mu, logvar, check.positive_int("samples", samples)


def reparameterization_gradients(f: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor,
                                 logvar: torch.Tensor, samples: int, *,
                                 generator: torch.Generator | None = None) -> torch.Tensor:
    """``samples`` independent estimates of the gradient of E_{z ~ N(mu, diag(exp(logvar)))}[f(z)] with
    respect to mu, each grad_mu f(mu + sigma eps) for one eps. f maps (S, L) to (S,); mu, logvar (L,) -> (S, L)."""
    f, mu, logvar, samples = _toy_problem(f, mu, logvar, samples)
    mu_s = mu.detach().expand(samples, -1).clone().requires_grad_(True)  # (S, L): one copy per sample
    z = reparameterize(mu_s, logvar.detach().expand(samples, -1), generator)  # (S, L)
    # row s of the gradient of sum_s f(z_s) is grad_mu f(z_s): the samples do not interact
    (grads,) = torch.autograd.grad(f(z).sum(), mu_s)
    return grads


def score_function_gradients(f: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor,
                             logvar: torch.Tensor, samples: int, *,
                             generator: torch.Generator | None = None) -> torch.Tensor:
    """``samples`` independent score-function (REINFORCE) estimates of the same gradient,
    each f(z) grad_mu log q(z) for one z ~ q. f maps (S, L) to (S,); mu, logvar (L,) -> (S, L)."""
    f, mu, logvar, samples = _toy_problem(f, mu, logvar, samples)
    with torch.no_grad():
        z = reparameterize(mu.expand(samples, -1), logvar.expand(samples, -1), generator)  # (S, L)
        # grad_mu log N(z; mu, sigma^2) = (z - mu) / sigma^2, so the estimate is f(z) (z - mu) / sigma^2
        return f(z).unsqueeze(1) * (z - mu) / logvar.exp()
