"""dlbook.data.graphs: the karate club, the generated citation graph and the labelled-node masks."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

from dlbook.data import citation_graph, karate_club, labelled_nodes
from tests.helpers import check_bad_inputs


def test_karate_club_matches_networkx():
    g = karate_club()
    G = nx.karate_club_graph()
    assert g.features.shape == (34, 34) and torch.equal(g.features, torch.eye(34))
    assert g.adjacency.sum().item() == 2 * G.number_of_edges() == 156
    assert torch.equal(g.adjacency, g.adjacency.T) and g.adjacency.diag().abs().sum() == 0
    assert g.classes == ("Mr. Hi", "Officer") and g.labels.bincount().tolist() == [17, 17]
    assert g.labels[0] == 0 and g.labels[33] == 1  # the instructor and the administrator
    assert all(g.adjacency[u, v] == 1 for u, v in G.edges)


def test_citation_graph_is_deterministic_and_seeded():
    a, b, c = citation_graph(200, 3, seed=5), citation_graph(200, 3, seed=5), citation_graph(200, 3, seed=6)
    for x, y in zip(a[:3], b[:3]):
        assert torch.equal(x, y)
    assert not torch.equal(a.adjacency, c.adjacency) and not torch.equal(a.features, c.features)


def test_citation_graph_shapes_and_validity():
    g = citation_graph(300, 4, num_words=60, words_per_node=5, seed=0)
    assert g.features.shape == (300, 60) and g.adjacency.shape == (300, 300) and g.labels.shape == (300,)
    assert g.num_nodes == 300 and g.num_classes == 4
    A = g.adjacency
    assert torch.equal(A, A.T) and A.diag().abs().sum() == 0 and set(A.unique().tolist()) <= {0.0, 1.0}
    assert set(g.features.unique().tolist()) <= {0.0, 1.0}
    words = g.features.sum(1)
    assert (words >= 1).all() and (words <= 5).all()


def test_citation_graph_has_the_requested_class_structure():
    N, C = 1200, 4
    g = citation_graph(N, C, mean_degree=6.0, homophily=0.8, feature_noise=0.3, seed=1)
    A, y = g.adjacency, g.labels
    assert abs(A.sum(1).mean().item() - 6.0) < 0.5
    same = (y[:, None] == y[None, :]).float()
    assert abs(((A * same).sum() / A.sum()).item() - 0.8) < 0.04
    # words of a node's own topic (word id % C == class) make up 1 - noise + noise / C of its words
    topic = (torch.arange(g.features.shape[1])[None, :] % C == y[:, None]).float()
    share = ((g.features * topic).sum() / g.features.sum()).item()
    assert share > 0.75  # expected about 0.775 before duplicates; duplicates favour the topic a little more
    # no structure at all when homophily is the class share and every word is noise
    flat = citation_graph(N, C, mean_degree=6.0, homophily=1 / C, feature_noise=1.0, seed=1)
    same = (flat.labels[:, None] == flat.labels[None, :]).float()
    assert abs(((flat.adjacency * same).sum() / flat.adjacency.sum()).item() - 1 / C) < 0.05


def test_labelled_nodes():
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    mask = labelled_nodes(y, 2, seed=0)
    assert mask.dtype == torch.bool and y[mask].bincount().tolist() == [2, 2, 2]
    assert torch.equal(mask, labelled_nodes(y, 2, seed=0))
    masks = {tuple(labelled_nodes(y, 1, seed=s).tolist()) for s in range(10)}
    assert len(masks) > 1


@pytest.mark.parametrize("kwargs,error,name", [
    ({"num_nodes": 1}, ValueError, "num_nodes"),
    ({"num_nodes": 5, "num_classes": 3}, ValueError, "num_nodes"),
    ({"num_classes": 1}, ValueError, "num_classes"),
    ({"homophily": 1.5}, ValueError, "homophily"),
    ({"feature_noise": -0.1}, ValueError, "feature_noise"),
    ({"mean_degree": 0}, ValueError, "mean_degree"),
    ({"seed": -1}, ValueError, "seed"),
    ({"words_per_node": 2.5}, TypeError, "words_per_node"),
])
def test_citation_graph_bad_inputs(kwargs, error, name):
    check_bad_inputs([(lambda: citation_graph(**kwargs), error, name)])


def test_labelled_nodes_bad_inputs():
    y = torch.tensor([0, 0, 1])
    check_bad_inputs([
        (lambda: labelled_nodes(y, 2), ValueError, "per_class"),
        (lambda: labelled_nodes(y, 0), ValueError, "per_class"),
        (lambda: labelled_nodes(y.float(), 1), TypeError, "labels"),
    ])
