"""Graphs for node classification (data for Part 12; registered in dlbook.data).

:func:`karate_club` is Zachary's karate club as networkx ships it: 34 members,
78 friendships, and the faction each member joined after the club split.
:func:`citation_graph` generates a citation-style graph from a seed: a
stochastic block model (papers of one class cite each other more often) whose
nodes carry bag-of-words features drawn from their class's topic, diluted with
words drawn from the whole vocabulary. :func:`labelled_nodes` picks the few
nodes whose labels a semi-supervised model may see. Nothing is downloaded.

>>> g = citation_graph(40, 2, seed=0)
>>> g.features.shape, g.adjacency.shape, g.labels.shape
(torch.Size([40, 100]), torch.Size([40, 40]), torch.Size([40]))
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from dlbook import _checks as check

__all__ = ["Graph", "karate_club", "citation_graph", "labelled_nodes"]


class Graph(NamedTuple):
    """A graph with node features X (N, F), a dense symmetric adjacency A (N, N) and node labels y (N,)."""

    features: torch.Tensor
    adjacency: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    @property
    def num_nodes(self) -> int:
        """N, the number of nodes."""
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.classes)


def karate_club() -> Graph:
    """Zachary's karate club: one-hot identity features (34, 34), unweighted adjacency, faction labels (0 = Mr. Hi)."""
    import networkx as nx

    G = nx.karate_club_graph()
    nodes = sorted(G.nodes)
    A = torch.from_numpy(nx.to_numpy_array(G, nodelist=nodes, weight=None)).float()  # (34, 34), 0/1
    classes = ("Mr. Hi", "Officer")
    y = torch.tensor([classes.index(G.nodes[v]["club"]) for v in nodes])  # (34,)
    return Graph(torch.eye(len(nodes)), A, y, classes)


def citation_graph(
    num_nodes: int = 600,
    num_classes: int = 4,
    *,
    num_words: int = 100,
    words_per_node: int = 8,
    feature_noise: float = 0.5,
    mean_degree: float = 5.0,
    homophily: float = 0.75,
    seed: int = 0,
) -> Graph:
    """A stochastic block model with class-dependent bag-of-words features, generated from ``seed``.

    Classes are equally likely. Each node draws ``words_per_node`` words; a word
    comes from the node's class topic (an equal share of the vocabulary) with
    probability ``1 - feature_noise`` and from the whole vocabulary otherwise.
    Features are binary word presence (N, num_words). Edges are independent,
    with probabilities set so that a node has ``mean_degree`` neighbours on
    average, a fraction ``homophily`` of them in its own class.
    """
    N = check.positive_int("num_nodes", num_nodes, minimum=2)
    C = check.positive_int("num_classes", num_classes, minimum=2)
    V = check.positive_int("num_words", num_words, minimum=C)
    W = check.positive_int("words_per_node", words_per_node)
    noise = check.fraction("feature_noise", feature_noise, closed="[]")
    degree = check.positive_float("mean_degree", mean_degree)
    h = check.fraction("homophily", homophily, closed="[]")
    g = torch.Generator().manual_seed(check.nonnegative_int("seed", seed))
    if N < 2 * C:
        raise ValueError(f"num_nodes must be at least 2 * num_classes = {2 * C}, got {N}")

    y = torch.randint(0, C, (N,), generator=g)  # (N,) classes
    # edge probabilities: h * degree neighbours expected inside the class, (1 - h) * degree outside
    same = y[:, None] == y[None, :]  # (N, N)
    p_in = min(1.0, h * degree / (N / C - 1))
    p_out = min(1.0, (1 - h) * degree / (N - N / C))
    p = torch.where(same, torch.tensor(p_in), torch.tensor(p_out))  # (N, N)
    upper = torch.triu(torch.rand(N, N, generator=g) < p, diagonal=1)  # each pair once, no self-loops
    A = (upper | upper.T).float()  # (N, N) symmetric

    # class c's topic is the words c, c + C, c + 2C, ...: an equal share of the vocabulary
    topic = torch.arange(V)[None, :] % C == torch.arange(C)[:, None]  # (C, V)
    word_probs = (1 - noise) * topic / topic.sum(dim=1, keepdim=True) + noise / V  # (C, V), rows sum to 1
    words = torch.multinomial(word_probs[y], W, replacement=True, generator=g)  # (N, W) word ids
    X = torch.zeros(N, V).scatter_(1, words, 1.0)  # (N, V) word present or not
    return Graph(X, A, y, tuple(f"topic {c}" for c in range(C)))


def labelled_nodes(labels: torch.Tensor, per_class: int, *, seed: int = 0) -> torch.Tensor:
    """A bool mask (N,) selecting ``per_class`` random nodes of every class, drawn from ``seed``."""
    labels = check.labels("labels", labels)
    k = check.positive_int("per_class", per_class)
    g = torch.Generator().manual_seed(check.nonnegative_int("seed", seed))
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for c in labels.unique().tolist():
        members = torch.nonzero(labels == c).flatten()
        if len(members) < k:
            raise ValueError(f"per_class must be at most the size of the smallest class, {len(members)}; got {k}")
        mask[members[torch.randperm(len(members), generator=g)[:k]]] = True
    return mask
