"""dlbook.captioning_attention: the decoder against its equations, the weights as distributions,
teacher forcing against step-by-step decoding and the beam-search adapter, gradients, the doubly
stochastic penalty against autograd, learning on held-out scenes, bad input."""

from __future__ import annotations

import pytest
import torch

from dlbook.captioning import (AttentionCaptionerConfig, Captioner, CaptionerConfig, ImageFeatures, SoftAttentionDecoder,
                               caption_loss, greedy_decode, step_function, train_captioner)
from dlbook.captioning_attention import doubly_stochastic_penalty, forward_with_weights, greedy_with_weights
from dlbook.data.scenes import caption_scenes
from tests.helpers import check_bad_inputs

V = 11


def _model(seed: int = 0, **changes) -> Captioner:
    torch.manual_seed(seed)
    sizes = dict(vocab_size=V, image_size=16, channels=(4, 6), feature_dim=5, embedding_dim=7, hidden_size=9,
                 attention_dim=8)
    config = AttentionCaptionerConfig(**{**sizes, **changes})
    return Captioner(config, SoftAttentionDecoder(config)).double().eval()


def _batch(seed: int = 1, B: int = 3, T: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, 3, 16, 16, generator=g, dtype=torch.float64), torch.randint(1, V, (B, T), generator=g)


@pytest.mark.parametrize("gate", [True, False])
def test_shapes_and_weights_are_distributions_over_the_grid(gate):
    model = _model(gate=gate)
    images, inputs = _batch()
    logits, weights = forward_with_weights(model, images, inputs)
    assert logits.shape == (3, 6, V) and weights.shape == (3, 6, 4, 4)  # 16 pixels, two 2x2 pools: 4x4 grid
    torch.testing.assert_close(weights.sum((2, 3)), torch.ones(3, 6, dtype=torch.float64), atol=1e-12, rtol=0)
    assert (weights > 0).all()
    features = model.encoder(images)
    state = model.decoder.init_state(features)
    assert [s.shape for s in state] == [(3, 9), (3, 9)]
    out, new_state, alpha = model.decoder.step_with_weights(inputs[:, 0], state, features)
    assert out.shape == (3, V) and alpha.shape == (3, 16) and [s.shape for s in new_state] == [(3, 9), (3, 9)]
    assert (model.decoder.beta is None) == (not gate)


def test_one_step_equals_the_equations_written_out():
    model = _model()
    images, inputs = _batch(seed=2)
    dec = model.decoder
    features = model.encoder(images)
    h, c = dec.init_state(features)
    logits, (h1, c1), alpha = dec.step_with_weights(inputs[:, 0], (h, c), features)
    a = features.grid.flatten(2).transpose(1, 2)  # (B, L, C)
    att = dec.attention
    q, k = h @ att.W_q.weight.T, a @ att.W_k.weight.T  # (B, d_a), (B, L, d_a)
    e = torch.tanh(q[:, None, :] + k) @ att.v.weight[0]  # (B, L): v . tanh(W_q h + W_k a_i)
    expected_alpha = torch.softmax(e, dim=1)
    beta = torch.sigmoid(h @ dec.beta.weight.T + dec.beta.bias)  # (B, 1)
    z = beta * torch.einsum("bl,blc->bc", expected_alpha, a)
    lstm = torch.nn.LSTMCell(dec.cell.input_size, dec.cell.hidden_size).double()
    lstm.load_state_dict(dec.cell.state_dict())
    h_ref, c_ref = lstm(torch.cat([dec.embedding(inputs[:, 0]), z], 1), (h, c))
    torch.testing.assert_close(alpha, expected_alpha, atol=1e-12, rtol=0)
    torch.testing.assert_close(h1, h_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(c1, c_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(logits, dec.output(torch.cat([h_ref, z], 1)), atol=1e-12, rtol=0)
    # h_0 = tanh(W_h v + b_h): the same start as the captioner without attention
    torch.testing.assert_close(h, torch.tanh(dec.init_h(features.summary)))


def test_teacher_forcing_agrees_with_the_step_loop_greedy_decoding_and_beam_adapter():
    model = _model(seed=3)
    images, inputs = _batch(seed=3)
    logits, _ = forward_with_weights(model, images, inputs)
    torch.testing.assert_close(model(images, inputs), logits, atol=1e-12, rtol=0)  # CaptionDecoder.forward
    # step_function's cached steps give the log-probabilities of teacher forcing at every prefix
    step_fn = step_function(model, images[1])
    for t in range(1, inputs.shape[1] + 1):
        prefix = torch.cat([torch.tensor([[1]]), inputs[1:2, 1:t]], 1)  # <bos>, then the inputs
        full, _ = forward_with_weights(model, images[1:2], prefix)
        torch.testing.assert_close(step_fn(prefix)[0], full[0, -1].log_softmax(0), atol=1e-10, rtol=0)
    tokens, weights = greedy_with_weights(model, images, max_len=5)
    assert tokens == [t for t, _ in greedy_decode(model, images, max_len=5)]
    assert weights.shape == (3, 5, 4, 4)
    for b, row in enumerate(tokens):  # maps of real steps sum to 1, after <eos> they are 0
        sums = weights[b].sum((1, 2))
        torch.testing.assert_close(sums[: len(row)], torch.ones(len(row), dtype=sums.dtype), atol=1e-6, rtol=0)
        assert (sums[len(row):] == 0).all()


def test_gradients_reach_every_parameter():
    model = _model(seed=4).train()
    images, inputs = _batch(seed=4, B=4, T=5)
    targets = torch.cat([inputs[:, 1:], torch.full((4, 1), 2)], 1)  # end with <eos>
    caption_loss(model, images, targets).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reached {name}"


def test_the_penalty_and_its_gradient_match_the_derivation():
    g = torch.Generator().manual_seed(5)
    e = torch.randn(2, 5, 9, dtype=torch.float64, generator=g, requires_grad=True)  # (B, T, L)
    alpha = e.softmax(dim=2)
    omega = 0.7
    doubly_stochastic_penalty(alpha, strength=omega).backward()
    a = alpha.detach()
    A = a.sum(1, keepdim=True)  # (B, 1, L)
    # R = omega sum_i (A_i - mu)^2 + omega hw (1 - mu)^2 with mu = T / (hw) = 5 / 9;
    # dR/de_ti = 2 omega alpha_ti (A_i - sum_j alpha_tj A_j)
    spread = omega * (((A - 5 / 9) ** 2).sum((1, 2)) + 9 * (1 - 5 / 9) ** 2).mean()
    torch.testing.assert_close(doubly_stochastic_penalty(a, strength=omega), spread, atol=1e-12, rtol=0)
    by_hand = 2 * omega * a * (A - (a * A).sum(2, keepdim=True)) / 2  # the mean over B = 2 captions
    torch.testing.assert_close(e.grad, by_hand, atol=1e-12, rtol=0)
    # columns that each sum to one cost nothing; masked steps do not count
    assert doubly_stochastic_penalty(torch.eye(4)[None]).item() == 0
    mask = torch.tensor([[True, True, False, False, False]] * 2)
    torch.testing.assert_close(doubly_stochastic_penalty(a, mask), doubly_stochastic_penalty(a[:, :2]))
    assert doubly_stochastic_penalty(a.view(2, 5, 3, 3)).item() == pytest.approx(doubly_stochastic_penalty(a).item())


def test_learns_to_caption_held_out_scenes():
    data = caption_scenes(300, 5, 60, 5, size=24, seed=0)
    config = AttentionCaptionerConfig(vocab_size=len(data.vocab), image_size=24, channels=(8, 16, 32),
                                      feature_dim=8, embedding_dim=16, hidden_size=32, attention_dim=16)
    torch.manual_seed(0)
    model = Captioner(config, SoftAttentionDecoder(config))
    test_targets = data.test.targets[:, 0]  # (N, T): first reference

    def held_out_loss() -> float:
        model.eval()
        with torch.no_grad():
            return caption_loss(model, data.test.images, test_targets).item()

    before = held_out_loss()
    train_captioner(model, data.train.images, data.train.targets, steps=40, batch_size=32,
                    optimizer=torch.optim.Adam(model.parameters(), lr=1e-2), generator=torch.Generator().manual_seed(0))
    after = held_out_loss()
    assert after < 0.5 * before, (before, after)


def test_rejects_bad_input():
    model = _model()
    images, inputs = _batch()
    plain = Captioner(CaptionerConfig(vocab_size=V, image_size=16, channels=(4, 6)))
    features = model.encoder(images)
    check_bad_inputs([
        (lambda: AttentionCaptionerConfig(vocab_size=V, attention_dim=0), ValueError, "attention_dim"),
        (lambda: AttentionCaptionerConfig(vocab_size=V, gate="yes"), TypeError, "gate"),
        (lambda: SoftAttentionDecoder(CaptionerConfig(vocab_size=V)), TypeError, "config"),
        (lambda: forward_with_weights(plain, images.float(), inputs), TypeError, "model"),
        (lambda: forward_with_weights(model, images[:, :, :8], inputs), ValueError, "images"),
        (lambda: forward_with_weights(model, images.long(), inputs), TypeError, "images"),
        (lambda: forward_with_weights(model, images, inputs.double()), TypeError, "inputs"),
        (lambda: forward_with_weights(model, images, inputs + V), ValueError, "inputs"),
        (lambda: forward_with_weights(model, images, inputs[:2]), ValueError, "inputs"),
        (lambda: greedy_with_weights(model, images, max_len=0), ValueError, "max_len"),
        (lambda: model.decoder.init_state(features.grid), TypeError, "features"),
        (lambda: model.decoder.init_state(ImageFeatures(features.grid[:, :3], features.summary)),
         ValueError, "features.grid"),
        (lambda: model.decoder.init_state(ImageFeatures(features.grid, features.summary[:2])),
         ValueError, "features.summary"),
        (lambda: doubly_stochastic_penalty(torch.ones(2, 3, 4, dtype=torch.long)), TypeError, "weights"),
        (lambda: doubly_stochastic_penalty(torch.ones(2, 3)), ValueError, "weights"),
        (lambda: doubly_stochastic_penalty(torch.ones(2, 3, 4), torch.ones(2, 4, dtype=torch.bool)),
         ValueError, "mask"),
        (lambda: doubly_stochastic_penalty(torch.ones(2, 3, 4), torch.ones(2, 3)), TypeError, "mask"),
        (lambda: doubly_stochastic_penalty(torch.ones(2, 3, 4), strength=-1.0), ValueError, "strength"),
    ])
