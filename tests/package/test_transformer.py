"""dlbook.transformer: LayerNorm against nn.LayerNorm, the blocks' shapes and causality, the
encoder's permutation equivariance, the encoder-decoder against nn.Transformer, the GPT's
key-value cache, its evaluation, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlbook.attention import sinusoidal_positions
from dlbook.feedforward import count_parameters
from dlbook.transformer import (GPT, CausalSelfAttention, Decoder, DecoderBlock, Encoder, EncoderBlock,
                                EncoderDecoder, GPTBlock, GPTConfig, LayerNorm, TransformerConfig, generate,
                                gpt_bits_per_char)
from tests.helpers import check_against_torch, check_bad_inputs


@pytest.mark.parametrize("shape, normalized", [((4, 6), 6), ((2, 3, 5), 5), ((2, 3, 4, 5), (4, 5)), ((7, 1), 1)])
def test_layer_norm_equals_torch_forward_and_gradients(shape, normalized):
    g = torch.Generator().manual_seed(sum(shape))
    ours, theirs = LayerNorm(normalized).double(), nn.LayerNorm(normalized).double()
    assert torch.equal(ours.weight, torch.ones(ours.normalized_shape))
    assert torch.equal(ours.bias, torch.zeros(ours.normalized_shape))
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    w_shape = ours.normalized_shape
    x, w, b = torch.randn(shape, generator=g), torch.randn(w_shape, generator=g), torch.randn(w_shape, generator=g)

    def run(layer):
        return lambda x, w, b: torch.func.functional_call(layer, {"weight": w, "bias": b}, (x,))

    check_against_torch(run(ours), run(theirs), [x * 3 + 1, w, b])


def test_layer_norm_normalizes_each_example_alone():
    x = torch.randn(5, 8, dtype=torch.float64) * torch.arange(1, 6, dtype=torch.float64)[:, None]
    y = LayerNorm(8, eps=0.0).double()(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(y.var(1, unbiased=False), torch.ones(5, dtype=torch.float64))
    # a row computed alone is the same row computed in a batch: no batch statistics
    torch.testing.assert_close(LayerNorm(8).double()(x[2:3]), LayerNorm(8).double()(x)[2:3])


def _config(**kw):
    return TransformerConfig(**{"embed_dim": 16, "num_heads": 4, "num_layers": 2, "ff_dim": 24, **kw})


def test_block_output_shapes():
    torch.manual_seed(0)
    c = _config()
    x, memory = torch.randn(3, 5, 16), torch.randn(3, 9, 16)
    assert EncoderBlock(c)(x).shape == (3, 5, 16)
    assert DecoderBlock(c)(x, memory).shape == (3, 5, 16)
    assert Encoder(c)(memory).shape == (3, 9, 16)
    assert Decoder(c)(x, memory).shape == (3, 5, 16)
    y, (k, v) = GPTBlock(GPTConfig(vocab_size=5, embed_dim=16, num_heads=4))(x)
    assert y.shape == (3, 5, 16) and k.shape == v.shape == (3, 4, 5, 4)


@pytest.mark.parametrize("fused", [False, True])
def test_gpt_is_causal_a_future_token_changes_no_earlier_output(fused):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=12, embed_dim=16, num_heads=2, num_layers=2, fused=fused)).double()
    x = torch.randint(0, 11, (2, 12), generator=torch.Generator().manual_seed(1))
    changed = x.clone()
    changed[:, 7] = (x[:, 7] + 1) % 11
    a, b = model(x)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :7], b[:, :7], atol=1e-12, rtol=0)
    assert (a[:, 7:] - b[:, 7:]).abs().amax() > 1e-6  # the change is seen from position 7 on


def test_decoder_block_is_causal_in_its_target():
    torch.manual_seed(0)
    block = DecoderBlock(_config()).double()
    x, memory = torch.randn(2, 6, 16, dtype=torch.float64), torch.randn(2, 4, 16, dtype=torch.float64)
    changed = x.clone()
    changed[:, 4] += 1.0
    a, b = block(x, memory), block(changed, memory)
    torch.testing.assert_close(a[:, :4], b[:, :4], atol=1e-12, rtol=0)
    assert (a[:, 4:] - b[:, 4:]).abs().amax() > 1e-6


def test_encoder_without_positions_is_permutation_equivariant_and_positions_break_it():
    torch.manual_seed(0)
    encoder = Encoder(_config()).double()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(encoder(x[:, perm]), encoder(x)[:, perm], atol=1e-12, rtol=0)
    P = sinusoidal_positions(7, 16, dtype=torch.float64)
    broken = (encoder(x[:, perm] + P) - encoder(x + P)[:, perm]).abs().amax()
    assert broken > 1e-3


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_decoder_equals_nn_transformer(norm_first):
    torch.manual_seed(0)
    theirs = nn.Transformer(d_model=16, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=24,
                            dropout=0.0, activation="gelu", batch_first=True, norm_first=norm_first).double().eval()
    ours = EncoderDecoder.from_torch(theirs)
    assert ours.config.norm_first is norm_first
    assert count_parameters(ours) == count_parameters(theirs)
    g = torch.Generator().manual_seed(1)
    src, tgt = torch.randn(3, 7, 16, generator=g), torch.randn(3, 5, 16, generator=g)
    mask = nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)

    def reference(src, tgt):
        return theirs(src, tgt, tgt_mask=mask)

    check_against_torch(ours, reference, [src, tgt], atol=1e-9)
    # a fresh one (not copied) has nn.Transformer's parameter count and output shape
    assert count_parameters(EncoderDecoder(_config(num_heads=4))) == count_parameters(theirs)


def test_cached_attention_equals_full_attention():
    torch.manual_seed(0)
    attn = CausalSelfAttention(12, 3).double()
    x = torch.randn(2, 9, 12, dtype=torch.float64)
    full, (k, v) = attn(x)
    first, cache = attn(x[:, :4])
    rest, (k2, v2) = attn(x[:, 4:], cache)
    torch.testing.assert_close(torch.cat([first, rest], 1), full, atol=1e-12, rtol=0)
    assert torch.equal(k, k2) or torch.allclose(k, k2, atol=1e-14)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_gpt_cache_gives_the_uncached_logits_and_generate_the_same_tokens(positions):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=9, block_size=20, embed_dim=16, num_heads=2, num_layers=2, positions=positions))
    x = torch.randint(0, 9, (3, 20), generator=torch.Generator().manual_seed(2))
    full, _ = model(x)
    pieces, cache = [], None
    for a, b in [(0, 6), (6, 7), (7, 13), (13, 20)]:
        logits, cache = model(x[:, a:b], cache)
        pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)
    for kw in ({"top_k": 1}, {"temperature": 0.8}, {"temperature": 1.5, "top_k": 4}):
        with_cache = generate(model, x[0, :3], 17, generator=torch.Generator().manual_seed(5), **kw)
        without = generate(model, x[0, :3], 17, generator=torch.Generator().manual_seed(5), use_cache=False, **kw)
        assert with_cache.shape == (17,) and torch.equal(with_cache, without)


def test_fused_and_readable_attention_agree():
    torch.manual_seed(0)
    a = GPT(GPTConfig(vocab_size=9, block_size=10, embed_dim=16, num_heads=4))
    b = GPT(GPTConfig(vocab_size=9, block_size=10, embed_dim=16, num_heads=4, fused=True))
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, 9, (2, 10))
    torch.testing.assert_close(a(x)[0], b(x)[0], atol=1e-5, rtol=1e-5)


def test_top_k_one_is_greedy_and_top_k_limits_the_choices():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=7, block_size=30, embed_dim=8, num_heads=2, num_layers=1))
    prompt = torch.tensor([1, 2])
    drawn = generate(model, prompt, 5, top_k=1, generator=torch.Generator().manual_seed(0))
    tokens = prompt.clone()
    for t in drawn:  # greedy by hand
        assert t == model(tokens[None])[0][0, -1].argmax()
        tokens = torch.cat([tokens, t[None]])
    logits = model(prompt[None])[0][0, -1]
    allowed = set(torch.topk(logits, 2).indices.tolist())
    firsts = {generate(model, prompt, 1, top_k=2, temperature=5.0, generator=torch.Generator().manual_seed(s)).item()
              for s in range(40)}
    assert firsts == allowed


def test_gpt_bits_per_char_scores_each_character_once_with_the_right_value():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=6, block_size=8, embed_dim=8, num_heads=2, num_layers=1))
    ids = torch.randint(0, 6, (37,), generator=torch.Generator().manual_seed(0))
    # stride = block_size: disjoint windows, each scored fully, computable by hand
    nats = 0.0
    for s in range(0, 36, 8):
        chunk = ids[s: s + 9]
        if len(chunk) < 9:  # the last window is pushed back to end at the text's end
            s = 36 - 8
            chunk = ids[s:]
            logp = torch.log_softmax(model(chunk[None, :-1])[0][0], -1)
            nll = -logp[torch.arange(8), chunk[1:]]
            nats += nll[8 - (36 - 32):].sum().item()
            continue
        logp = torch.log_softmax(model(chunk[None, :-1])[0][0], -1)
        nats += -logp[torch.arange(8), chunk[1:]].sum().item()
    expected = nats / 36 / math.log(2)
    assert math.isclose(gpt_bits_per_char(model, ids, stride=8), expected, rel_tol=1e-5)
    # an untrained model is close to uniform: about log2(6) bits
    assert abs(gpt_bits_per_char(model, ids) - math.log2(6)) < 0.3


def test_gpt_learns_a_repeating_pattern():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=5, block_size=16, embed_dim=32, num_heads=2, num_layers=1))
    text = torch.tensor([0, 1, 2, 3, 4, 2, 1] * 40)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(60):
        s = torch.randint(0, len(text) - 17, (16,))
        chunk = text[s[:, None] + torch.arange(17)]
        loss = nn.functional.cross_entropy(model(chunk[:, :-1])[0].flatten(0, 1), chunk[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    held_out = torch.tensor([3, 4, 2, 1, 0, 1, 2] * 6)  # the same cycle from another phase
    assert gpt_bits_per_char(model, held_out) < 0.5  # uniform would be log2(5) = 2.32


def test_bad_input():
    model = GPT(GPTConfig(vocab_size=5, block_size=6, embed_dim=8, num_heads=2, num_layers=1))
    encoder = Encoder(_config())
    check_bad_inputs([
        (lambda: LayerNorm(0), ValueError, "normalized_shape"),
        (lambda: LayerNorm(4, eps=-1.0), ValueError, "eps"),
        (lambda: LayerNorm(4)(torch.randn(3, 5)), ValueError, "x"),
        (lambda: LayerNorm(4)(torch.zeros(3, 4, dtype=torch.long)), TypeError, "x"),
        (lambda: TransformerConfig(embed_dim=10, num_heads=3), ValueError, "num_heads"),
        (lambda: TransformerConfig(dropout=1.5), ValueError, "dropout"),
        (lambda: GPTConfig(vocab_size=5, positions="rotary"), ValueError, "positions"),
        (lambda: GPTConfig(vocab_size=0), ValueError, "vocab_size"),
        (lambda: CausalSelfAttention(10, 4), ValueError, "num_heads"),
        (lambda: encoder(torch.randn(2, 5, 15)), ValueError, "x"),
        (lambda: Decoder(_config())(torch.randn(2, 5, 16), torch.randn(3, 4, 16)), ValueError, "memory"),
        (lambda: model(torch.zeros(2, 7, dtype=torch.long)), ValueError, "block_size"),
        (lambda: model(torch.tensor([[0, 5]])), ValueError, "tokens"),
        (lambda: model(torch.zeros(1, 3)), TypeError, "tokens"),
        (lambda: model(torch.zeros(1, 3, dtype=torch.long), cache="no"), TypeError, "cache"),
        (lambda: generate(model, torch.tensor([0, 1]), 6), ValueError, "block_size"),
        (lambda: generate(model, torch.tensor([0, 1]), 2, temperature=0.0), ValueError, "temperature"),
        (lambda: generate(model, torch.tensor([0, 1]), 2, top_k=0), ValueError, "top_k"),
        (lambda: gpt_bits_per_char(model, torch.tensor([1])), ValueError, "ids"),
        (lambda: gpt_bits_per_char(model, torch.tensor([1, 2, 3]), stride=9), ValueError, "stride"),
        (lambda: EncoderDecoder.from_torch(nn.Linear(2, 2)), TypeError, "nn.Transformer"),
    ])
