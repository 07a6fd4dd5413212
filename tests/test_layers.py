"""vlp's own layers against PyTorch's reference attention, and their two paths against each other."""
import numpy as np
import pytest
import torch
from torch import nn

from vlp.attention import worked_example
from vlp.layers import Attention, Block, Transformer, causal_mask, combine_masks, padding_mask, scaled_dot_product_attention

torch.manual_seed(0)
B, T, S, D, H = 3, 7, 5, 32, 4


def pair(dim=D, heads=H):
    """Our Attention and nn.MultiheadAttention holding the same weights."""
    ours = Attention(dim, heads)
    with torch.no_grad():
        ours.in_proj_bias.normal_()
    ref = nn.MultiheadAttention(dim, heads, batch_first=True)
    ref.load_state_dict(ours.state_dict())
    return ours.eval(), ref.eval()


def test_state_dict_names_match_multihead_attention():
    ours, ref = pair()
    assert set(ours.state_dict()) == set(ref.state_dict())


@pytest.mark.parametrize("need_weights", [False, True])
def test_self_attention_equals_torch(need_weights):
    ours, ref = pair()
    x = torch.randn(B, T, D)
    out, w = ours(x, need_weights=need_weights)
    ref_out, ref_w = ref(x, x, x, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0)
    if need_weights:
        torch.testing.assert_close(w, ref_w, atol=1e-5, rtol=0)
    else:
        assert w is None


@pytest.mark.parametrize("need_weights", [False, True])
def test_cross_attention_with_padding_equals_torch(need_weights):
    ours, ref = pair()
    x, ctx = torch.randn(B, T, D), torch.randn(B, S, D)
    keep = torch.ones(B, S, dtype=torch.bool)
    keep[0, 3:] = False
    keep[2, 1:] = False
    out, w = ours(x, context=ctx, mask=padding_mask(keep), need_weights=need_weights)
    # torch's key_padding_mask is True where a key is *ignored*
    ref_out, ref_w = ref(x, ctx, ctx, key_padding_mask=~keep, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0)
    if need_weights:
        torch.testing.assert_close(w, ref_w, atol=1e-5, rtol=0)
        assert torch.all(w[0, :, :, 3:] == 0) and torch.all(w[2, :, :, 1:] == 0)


@pytest.mark.parametrize("need_weights", [False, True])
def test_causal_and_padding_masks_equal_torch(need_weights):
    ours, ref = pair()
    x = torch.randn(B, T, D)
    keep = torch.ones(B, T, dtype=torch.bool)
    keep[1, 5:] = False
    mask = combine_masks(causal_mask(T), padding_mask(keep))
    out, _ = ours(x, mask=mask, need_weights=need_weights)
    ref_out, _ = ref(x, x, x, attn_mask=~causal_mask(T), key_padding_mask=~keep)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0)


def test_additive_mask_equals_boolean_mask():
    ours, _ = pair()
    x = torch.randn(B, T, D)
    boolean = causal_mask(T)
    additive = torch.zeros(T, T).masked_fill(~boolean, float("-inf"))
    for need_weights in (False, True):
        a, _ = ours(x, mask=boolean, need_weights=need_weights)
        b, _ = ours(x, mask=additive, need_weights=need_weights)
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_weights_shape_rows_sum_to_one_and_causal_zeros():
    ours, _ = pair()
    x = torch.randn(B, T, D)
    _, w = ours(x, mask=causal_mask(T), need_weights=True)
    assert w.shape == (B, H, T, T)
    torch.testing.assert_close(w.sum(-1), torch.ones(B, H, T))
    upper = torch.ones(T, T, dtype=torch.bool).triu(1)
    assert torch.all(w[..., upper] == 0)
    assert torch.all(w[..., ~upper] > 0)


def test_fused_and_explicit_paths_agree_in_a_deep_stack():
    stack = Transformer(D, layers=3, num_heads=H, cross_attention=True).eval()
    x, ctx = torch.randn(B, T, D), torch.randn(B, S, D)
    fused, sw, cw = stack(x, mask=causal_mask(T), context=ctx)
    explicit, sw2, cw2 = stack(x, mask=causal_mask(T), context=ctx, need_weights=True)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=0)
    assert sw == [] and cw == []
    assert [w.shape for w in sw2] == [(B, H, T, T)] * 3
    assert [w.shape for w in cw2] == [(B, H, T, S)] * 3


def test_formula_function_is_softmax_qk_v():
    q, k, v = torch.randn(2, 4, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 3)
    out, w = scaled_dot_product_attention(q, k, v)
    expected_w = torch.softmax(q @ k.transpose(1, 2) / 8**0.5, dim=-1)
    torch.testing.assert_close(w, expected_w)
    torch.testing.assert_close(out, expected_w @ v)
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=0)


def test_kv_cache_decoding_equals_full_causal_forward():
    stack = Transformer(D, layers=2, num_heads=H, cross_attention=True).eval()
    x, ctx = torch.randn(B, T, D), torch.randn(B, S, D)
    full, _, _ = stack(x, mask=causal_mask(T), context=ctx)
    caches = stack.new_caches()
    steps = [stack(x[:, :3], mask=causal_mask(3), context=ctx, caches=caches)[0]]  # a prompt of 3
    for t in range(3, T):  # then one token at a time
        steps.append(stack(x[:, t : t + 1], mask=causal_mask(1, t + 1), context=ctx, caches=caches)[0])
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)
    assert caches[0].self_attn.length == T and caches[0].cross_attn.length == S


def test_block_passes_weights_up_only_when_asked():
    block = Block(D, H, cross_attention=True).eval()
    x, ctx = torch.randn(B, T, D), torch.randn(B, S, D)
    _, sw, cw = block(x, context=ctx)
    assert sw is None and cw is None
    _, sw, cw = block(x, context=ctx, need_weights=True)
    assert sw.shape == (B, H, T, T) and cw.shape == (B, H, T, S)


def test_dropout_only_in_training():
    attn = Attention(D, H, dropout=0.5)
    x = torch.randn(B, T, D)
    attn.eval()
    a, _ = attn(x)
    b, _ = attn(x)
    torch.testing.assert_close(a, b)
    attn.train()
    c, _ = attn(x)
    assert not torch.allclose(a, c)


def test_worked_example_three_tokens():
    e = worked_example([1, 2, 3], [4, 5, 6], [7, 8, 9])
    # QKᵀ is the outer product, a 3×3 matrix
    np.testing.assert_array_equal(e.scores, np.outer([1, 2, 3], [4, 5, 6]))
    np.testing.assert_array_equal(e.scaled, e.scores)  # d_k = 1, so √d_k = 1
    row0 = np.exp([4, 5, 6]) / np.exp([4, 5, 6]).sum()
    np.testing.assert_allclose(e.weights[0], row0)
    np.testing.assert_allclose(e.weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(e.output[:, 0], e.weights @ [7, 8, 9])
    np.testing.assert_allclose(e.output[:, 0], [8.5752, 8.8509, 8.9480], atol=1e-4)


def test_worked_example_scales_by_key_width_and_agrees_with_torch():
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), rng.normal(size=(5, 2))
    e = worked_example(q, k, v)
    np.testing.assert_allclose(e.scaled, e.scores / 2.0)  # √4
    out, w = scaled_dot_product_attention(*(torch.tensor(a) for a in (q, k, v)))
    np.testing.assert_allclose(e.weights, w.numpy(), atol=1e-12)
    np.testing.assert_allclose(e.output, out.numpy(), atol=1e-12)


def test_worked_example_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same width"):
        worked_example(np.ones((3, 2)), np.ones((3, 1)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="one row per key"):
        worked_example([1, 2], [1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        worked_example([1, float("nan")], [1, 2], [1, 2])
