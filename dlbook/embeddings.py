"""Word embeddings: skip-gram with negative sampling, PPMI-SVD and how to score them
(Part 9, "Word embeddings").

Both methods start from the same (center word, context word) pairs
(:func:`skipgram_pairs`, :func:`cooccurrence`). :class:`SkipGram` learns two
vectors per word by telling observed pairs from noise pairs
(:func:`sgns_loss`, gradient by hand in :func:`sgns_gradients`);
:func:`ppmi_svd` factorizes the positive pointwise mutual information of the
counts instead. :func:`template_corpus` generates sentences whose word classes
are known, and :func:`neighbour_purity` scores embeddings against them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlbook import _checks as check

__all__ = [
    "skipgram_pairs", "cooccurrence", "noise_distribution", "sgns_loss", "sgns_gradients",
    "SkipGramConfig", "SkipGram", "train_skipgram", "ppmi", "ppmi_svd", "nearest_neighbours",
    "neighbour_purity", "TemplateCorpus", "template_corpus",
]


def _ids(name: str, ids: object, vocab_size: int | None = None) -> torch.Tensor:
    """``ids`` if it is a non-empty 1-D integer tensor of word ids in [0, vocab_size)."""
    return check.labels(name, ids, vocab_size)


def skipgram_pairs(ids: torch.Tensor, window: int, *, skip: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (center, context) pair at distance 1..window in ``ids`` (N,); pairs involving the
    id ``skip`` (say, an unknown-word id) are dropped. Returns (P,), (P,)."""
    ids = _ids("ids", ids)
    window = check.positive_int("window", window)
    centers, contexts = [], []
    for d in range(1, window + 1):
        # (w_t, w_{t+d}) and (w_{t+d}, w_t): context on both sides
        centers += [ids[:-d], ids[d:]]
        contexts += [ids[d:], ids[:-d]]
    centers, contexts = torch.cat(centers), torch.cat(contexts)
    if skip is not None:
        keep = (centers != skip) & (contexts != skip)
        centers, contexts = centers[keep], contexts[keep]
    return centers, contexts


def cooccurrence(centers: torch.Tensor, contexts: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Count matrix: entry (w, c) is how often c is a context of w. (V, V) float64."""
    vocab_size = check.positive_int("vocab_size", vocab_size)
    check.same_length(centers=centers, contexts=contexts)
    _ids("centers", centers, vocab_size)
    _ids("contexts", contexts, vocab_size)
    flat = centers * vocab_size + contexts  # (P,)
    return torch.bincount(flat, minlength=vocab_size * vocab_size).reshape(vocab_size, vocab_size).double()


def noise_distribution(counts: torch.Tensor, power: float = 0.75) -> torch.Tensor:
    """Unigram counts raised to ``power`` and normalized: where negative samples come from. (V,)."""
    counts = check.finite("counts", counts)
    check.expect_shape(counts, "V", "counts")
    if bool((counts < 0).any()) or float(counts.sum()) <= 0:
        raise ValueError("counts must be non-negative with a positive total")
    power = check.nonnegative_float("power", power)
    # P_n(w) = count(w)^power / sum_w' count(w')^power
    weights = counts.double() ** power
    return weights / weights.sum()


def sgns_loss(v_c: torch.Tensor, u_o: torch.Tensor, u_neg: torch.Tensor) -> torch.Tensor:
    """Mean negative-sampling loss of B (center, context) pairs with K noise words each.

    Shapes: v_c (B, D) center vectors, u_o (B, D) context vectors, u_neg (B, K, D) noise vectors.
    """
    sizes = check.expect_shape(v_c, "B D", "v_c")
    check.expect_shape(u_o, "B D", "u_o", **sizes)
    check.expect_shape(u_neg, "B K D", "u_neg", **sizes)
    for name, x in (("v_c", v_c), ("u_o", u_o), ("u_neg", u_neg)):
        check.floating(name, x)
    s_o = (u_o * v_c).sum(dim=1)  # (B,) score of the observed pair
    s_k = torch.einsum("bkd,bd->bk", u_neg, v_c)  # (B, K) scores of the noise pairs
    # L = -log sigma(u_o . v_c) - sum_k log sigma(-u_k . v_c), averaged over the batch
    return -(F.logsigmoid(s_o) + F.logsigmoid(-s_k).sum(dim=1)).mean()


def sgns_gradients(v_c: torch.Tensor, u_o: torch.Tensor,
                   u_neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient of :func:`sgns_loss` by hand, with respect to v_c, u_o and u_neg."""
    sgns_loss(v_c, u_o, u_neg)  # validates the shapes
    B = v_c.shape[0]
    s_o = (u_o * v_c).sum(dim=1, keepdim=True)  # (B, 1)
    s_k = torch.einsum("bkd,bd->bk", u_neg, v_c).unsqueeze(2)  # (B, K, 1)
    # dL/dv_c = (sigma(s_o) - 1) u_o + sum_k sigma(s_k) u_k
    d_v = (torch.sigmoid(s_o) - 1) * u_o + (torch.sigmoid(s_k) * u_neg).sum(dim=1)
    # dL/du_o = (sigma(s_o) - 1) v_c
    d_o = (torch.sigmoid(s_o) - 1) * v_c
    # dL/du_k = sigma(s_k) v_c
    d_k = torch.sigmoid(s_k) * v_c.unsqueeze(1)
    return d_v / B, d_o / B, d_k / B


@dataclass
class SkipGramConfig:
    """Sizes of a skip-gram model."""

    vocab_size: int
    dim: int = 50  # embedding dimension D
    negatives: int = 5  # noise words per observed pair, K

    def __post_init__(self) -> None:
        for name in ("vocab_size", "dim", "negatives"):
            setattr(self, name, check.positive_int(name, getattr(self, name)))


class SkipGram(nn.Module):
    """Two vectors per word: ``center`` (v_w, the embedding) and ``context`` (u_w).

    Shapes: centers (B,), contexts (B,), noise (B, K) word ids -> scalar loss.
    """

    def __init__(self, config: SkipGramConfig) -> None:
        super().__init__()
        self.config = config
        self.center = nn.Embedding(config.vocab_size, config.dim)
        self.context = nn.Embedding(config.vocab_size, config.dim)
        # small random centers and zero contexts, as word2vec starts
        nn.init.uniform_(self.center.weight, -0.5 / config.dim, 0.5 / config.dim)
        nn.init.zeros_(self.context.weight)

    def forward(self, centers: torch.Tensor, contexts: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        V = self.config.vocab_size
        _ids("centers", centers, V)
        _ids("contexts", contexts, V)
        check.expect_shape(noise, "B K", "noise", B=len(centers))
        _ids("noise", noise.flatten(), V)
        return sgns_loss(self.center(centers), self.context(contexts), self.context(noise))

    @property
    def embeddings(self) -> torch.Tensor:
        """The word vectors v_w, detached. (V, D)."""
        return self.center.weight.detach()


def train_skipgram(model: SkipGram, centers: torch.Tensor, contexts: torch.Tensor, noise: torch.Tensor, *,
                   epochs: int = 1, batch_size: int = 1024, lr: float = 1e-2,
                   generator: torch.Generator | None = None) -> list[float]:
    """Adam on shuffled pairs, ``negatives`` fresh noise words per pair; returns the loss per step."""
    V = model.config.vocab_size
    _ids("centers", centers, V)
    _ids("contexts", contexts, V)
    check.same_length(centers=centers, contexts=contexts)
    check.expect_shape(noise, "V", "noise", V=V)
    epochs, batch_size = check.positive_int("epochs", epochs), check.positive_int("batch_size", batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=check.positive_float("lr", lr))
    device = model.center.weight.device
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(centers), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            negative = torch.multinomial(noise, len(idx) * model.config.negatives, replacement=True,
                                         generator=generator).reshape(len(idx), -1)  # (B, K)
            loss = model(centers[idx].to(device), contexts[idx].to(device), negative.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


def ppmi(counts: torch.Tensor, *, power: float = 0.75) -> torch.Tensor:
    """Positive pointwise mutual information of a count matrix, with the context distribution
    raised to ``power`` (as negative sampling's noise is). (V, V)."""
    counts = check.finite("counts", counts)
    check.expect_shape(counts, "V C", "counts")
    if bool((counts < 0).any()) or float(counts.sum()) <= 0:
        raise ValueError("counts must be non-negative with a positive total")
    power = check.nonnegative_float("power", power)
    counts = counts.double()
    p_wc = counts / counts.sum()  # (V, C) joint
    p_w = p_wc.sum(dim=1, keepdim=True)  # (V, 1)
    p_c = counts.sum(dim=0) ** power
    p_c = (p_c / p_c.sum()).unsqueeze(0)  # (1, C) smoothed context distribution
    # PPMI(w, c) = max(0, log p(w, c) / (p(w) p(c)))
    pmi = torch.log(p_wc / (p_w * p_c))  # -inf where a pair never occurs
    return torch.nan_to_num(pmi, nan=0.0, neginf=0.0).clamp(min=0)


def ppmi_svd(counts: torch.Tensor, dim: int, *, power: float = 0.75) -> torch.Tensor:
    """Word vectors from a truncated SVD of the PPMI matrix: U_d sqrt(S_d). (V, dim)."""
    dim = check.positive_int("dim", dim)
    M = ppmi(counts, power=power)
    if dim > min(M.shape):
        raise ValueError(f"dim must be <= {min(M.shape)} for a {tuple(M.shape)} count matrix, got {dim}")
    # PPMI = U S V^T; keep the top dim singular directions, split S evenly between words and contexts
    U, S, _ = torch.linalg.svd(M, full_matrices=False)
    return U[:, :dim] * S[:dim].sqrt()


def _embeddings(name: str, E: object) -> torch.Tensor:
    E = check.finite(name, E)
    check.expect_shape(E, "V D", name)
    return E


def nearest_neighbours(E: torch.Tensor, query: torch.Tensor, k: int = 5) -> torch.Tensor:
    """The ``k`` words with the most similar vectors (cosine) to each query word, itself
    excluded. E (V, D), query (Q,) -> (Q, k) word ids."""
    E = _embeddings("E", E)
    query = _ids("query", query, len(E))
    k = check.positive_int("k", k)
    if k >= len(E):
        raise ValueError(f"k must be < the {len(E)} words, got {k}")
    unit = F.normalize(E.double(), dim=1)  # (V, D)
    # cos(v_q, v_w) = v_q . v_w / (|v_q| |v_w|)
    similarity = unit[query] @ unit.T  # (Q, V)
    similarity[torch.arange(len(query)), query] = -float("inf")
    return similarity.topk(k, dim=1).indices


def neighbour_purity(E: torch.Tensor, classes: torch.Tensor, k: int = 5) -> float:
    """Mean fraction of each word's ``k`` nearest neighbours (among the same words) that share
    its class. E (N, D), classes (N,)."""
    E = _embeddings("E", E)
    classes = check.labels("classes", classes)
    check.same_length(E=E, classes=classes)
    neighbours = nearest_neighbours(E, torch.arange(len(E)), k)  # (N, k)
    return float((classes[neighbours] == classes.unsqueeze(1)).double().mean())


#: The planted word classes of :func:`template_corpus`, eight words each.
CLASSES = {
    "animal": ("cat", "dog", "horse", "mouse", "rabbit", "tiger", "sheep", "goat"),
    "vehicle": ("car", "bus", "truck", "train", "tram", "van", "taxi", "bike"),
    "food": ("bread", "rice", "apple", "cheese", "soup", "pasta", "cake", "pear"),
    "colour": ("red", "blue", "green", "black", "white", "yellow", "grey", "brown"),
    "animal verb": ("sleeps", "runs", "jumps", "eats", "hides", "barks", "grazes", "sits"),
    "vehicle verb": ("stops", "drives", "brakes", "turns", "parks", "honks", "speeds", "waits"),
}

_TEMPLATES = (
    "the {colour} {animal} {animal verb} near the river",
    "a {animal} {animal verb} while the {animal} {animal verb}",
    "the {colour} {vehicle} {vehicle verb} on the road",
    "my {vehicle} {vehicle verb} behind a {colour} {vehicle}",
    "the {animal} likes {food} and {food}",
    "we ate {food} with {food} on the {vehicle}",
    "a {colour} {food} was left for the {animal}",
)


@dataclass(frozen=True)
class TemplateCorpus:
    """Generated sentences whose content words have known classes.

    Attributes:
        words: the text as one list of words, sentences concatenated.
        vocab: every word, in a fixed order (the class words first, class by class).
        ids: ``words`` as ids into ``vocab``, (N,) long.
        class_names: the planted classes.
        classes: the class of each of the first ``len(classes)`` words of ``vocab``.
    """

    words: tuple[str, ...]
    vocab: tuple[str, ...]
    ids: torch.Tensor
    class_names: tuple[str, ...]
    classes: torch.Tensor


def template_corpus(n_sentences: int = 3000, *, noise: float = 0.0, seed: int = 0) -> TemplateCorpus:
    """Sentences from fixed templates with class slots filled uniformly at random; with
    probability ``noise`` a slot takes a word of any class instead."""
    n_sentences = check.positive_int("n_sentences", n_sentences)
    noise = check.fraction("noise", noise, closed="[]")
    rng = np.random.default_rng(check.nonnegative_int("seed", seed))
    every_class_word = [w for members in CLASSES.values() for w in members]
    words: list[str] = []
    for _ in range(n_sentences):
        template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
        sentence = template.replace("{animal verb}", "{animal_verb}").replace("{vehicle verb}", "{vehicle_verb}")
        for token in sentence.split():
            if token.startswith("{"):
                name = token[1:-1].replace("_", " ")
                pool = every_class_word if rng.random() < noise else CLASSES[name]
                words.append(pool[rng.integers(len(pool))])
            else:
                words.append(token)
    class_words = [w for members in CLASSES.values() for w in members]
    others = sorted(set(words) - set(class_words))
    vocab = (*class_words, *others)
    index = {w: i for i, w in enumerate(vocab)}
    classes = torch.tensor([k for k, members in enumerate(CLASSES.values()) for _ in members])
    return TemplateCorpus(tuple(words), vocab, torch.tensor([index[w] for w in words]), tuple(CLASSES), classes)
