"""Attention: torch's multi-head self-attention (ViT), and Swin's shifted-window attention with its
relative position bias (V1 and V2), with the patch merging that goes between Swin's stages.

Tokens are channels last, without the batch: `(tokens, embed_dim)` for ViT, `(H, W, C)` for Swin.
MACs are those of the projections and of the two matrix products of attention (queries times keys,
weights times values), as torch's flop counter counts them; the softmax, the scaling and the bias
add none (docs/language.md, "What the numbers mean").
"""

from __future__ import annotations

from fractions import Fraction

from . import RF, Arg, Layer, Shape, ShapeProblem, need_rank, register


def _heads(layer: str, dim: int, num_heads: int) -> None:
    if dim % num_heads:
        raise ShapeProblem("E404", f"{layer}: num_heads {num_heads} does not divide the embedding dimension {dim}")


# ---- nn.MultiheadAttention as self-attention ---------------------------------------------------------

def mha_shape(a: dict, x: Shape) -> Shape:
    need_rank(x, "multihead_attention", (2,), "a (tokens, embed_dim) input")
    _heads("multihead_attention", x[-1], a["num_heads"])
    return x


def mha_weights(a: dict, x: Shape) -> dict[str, Shape]:
    e = x[-1]
    w = {"in_proj_weight": (3 * e, e), "out_proj.weight": (e, e)}
    if a["bias"]:
        w |= {"in_proj_bias": (3 * e,), "out_proj.bias": (e,)}
    return w


def mha_macs(a: dict, x: Shape, y: Shape) -> int:
    """L tokens of E features: the query, key and value projections (3 L E^2), queries times keys
    (L^2 E over all heads), the weights times the values (L^2 E) and the output projection (L E^2)."""
    tokens, e = x
    return 4 * tokens * e * e + 2 * tokens * tokens * e


def rf_attention(a: dict, x: Shape, rf: RF, whole: RF) -> RF:
    return whole  # every token attends to every token


# ---- Swin's shifted-window attention -----------------------------------------------------------------

def window_shape(layer: str):
    def shape(a: dict, x: Shape) -> Shape:
        need_rank(x, layer, (3,), "a (height, width, channels) input (channels last)")
        _heads(layer, x[-1], a["num_heads"])
        if any(s >= w for s, w in zip(a["shift_size"], a["window_size"])):
            raise ShapeProblem("E302", f"{layer}: shift_size {list(a['shift_size'])} must be smaller than "
                                       f"window_size {list(a['window_size'])}")
        return x
    return shape


def _padded_tokens(a: dict, x: Shape) -> int:
    """Tokens after padding the map to whole windows, as shifted_window_attention pads it."""
    (h, w), (wh, ww) = x[:2], a["window_size"]
    return -(-h // wh) * wh * -(-w // ww) * ww


def _table(a: dict) -> int:
    wh, ww = a["window_size"]
    return (2 * wh - 1) * (2 * ww - 1)


def window_weights(a: dict, x: Shape) -> dict[str, Shape]:
    c = x[-1]
    w: dict[str, Shape] = {"qkv.weight": (3 * c, c)}
    if a["qkv_bias"]:
        w["qkv.bias"] = (3 * c,)
    w["proj.weight"] = (c, c)
    if a["proj_bias"]:
        w["proj.bias"] = (c,)
    return w


def window_macs(a: dict, x: Shape, y: Shape) -> int:
    """Over the padded map's L tokens, in windows of N tokens: the qkv and output projections (4 L C^2)
    and the two products within each window (2 L N C)."""
    c, n = x[-1], a["window_size"][0] * a["window_size"][1]
    tokens = _padded_tokens(a, x)
    return 4 * tokens * c * c + 2 * tokens * n * c


def v2_weights(a: dict, x: Shape) -> dict[str, Shape]:
    h = a["num_heads"]
    return {**window_weights(a, x), "logit_scale": (h, 1, 1), "cpb_mlp.0.weight": (512, 2),
            "cpb_mlp.0.bias": (512,), "cpb_mlp.2.weight": (h, 512)}


def v2_macs(a: dict, x: Shape, y: Shape) -> int:
    """V1's, plus the MLP that makes the position bias from the (2 Wh - 1)(2 Ww - 1) relative
    coordinates: computed once a forward pass, whatever the batch."""
    return window_macs(a, x, y) + _table(a) * 512 * (2 + a["num_heads"])


def rf_window_attention(a: dict, x: Shape, rf: RF, whole: RF) -> RF:
    """A token sees its window: window_size tokens along each axis, the jump unchanged."""
    (wh, ww) = a["window_size"]
    return (rf[0] + (wh - 1) * rf[2], rf[1] + (ww - 1) * rf[3], rf[2], rf[3])


def _window_args() -> tuple[Arg, ...]:
    return (Arg("window_size", "pair1", keep_pair=True), Arg("shift_size", "pair0", keep_pair=True),
            Arg("num_heads", "count"), Arg("qkv_bias", "bool", True), Arg("proj_bias", "bool", True),
            Arg("attention_dropout", "prob", 0.0), Arg("dropout", "prob", 0.0))


# ---- Swin's patch merging ----------------------------------------------------------------------------

def merge_shape(a: dict, x: Shape) -> Shape:
    need_rank(x, "patch_merging_pad", (3,), "a (height, width, channels) input (channels last)")
    return (-(-x[0] // 2), -(-x[1] // 2), 4 * x[2])


def rf_merge(a: dict, x: Shape, rf: RF, whole: RF) -> RF:
    """A 2x2 patch, stride 2: as a 2x2 convolution of stride 2."""
    return (rf[0] + rf[2], rf[1] + rf[3], rf[2] * Fraction(2), rf[3] * Fraction(2))


register(
    Layer("multihead_attention", "self-attention of (tokens, embed_dim) inputs, torch's nn.MultiheadAttention "
          "(batch_first, q = k = v); MACs 4*L*E^2 + 2*L^2*E",
          (Arg("num_heads", "count"), Arg("dropout", "prob", 0.0), Arg("bias", "bool", True)),
          mha_shape, "nn.MultiheadAttention", weights=mha_weights, macs=mha_macs, rf=rf_attention,
          inferred=lambda a, x: {"embed_dim": x[-1]}, fixed=(("batch_first", "True"),),
          call=lambda m, x: f"{m}({x}, {x}, {x}, need_weights=False)[0]", fresh=True, category="attention"),
    Layer("shifted_window_attention", "Swin's window attention of an (H, W, C) input with a relative position "
          "bias table, the windows shifted by shift_size (torchvision's ShiftedWindowAttention); MACs "
          "4*L*C^2 + 2*L*N*C over the L tokens of the map padded to whole windows of N",
          _window_args(), window_shape("shifted_window_attention"), "ShiftedWindowAttention",
          weights=lambda a, x: {**window_weights(a, x), "relative_position_bias_table": (_table(a), a["num_heads"])},
          buffers=lambda a, x: {"relative_position_index": ((a["window_size"][0] * a["window_size"][1]) ** 2,)},
          macs=window_macs, rf=rf_window_attention, inferred=lambda a, x: {"dim": x[-1]}, fresh=True,
          helpers=("ShiftedWindowAttention",), category="attention"),
    Layer("shifted_window_attention_v2", "Swin V2's window attention: cosine attention with a learned logit "
          "scale, the position bias made by a small MLP (torchvision's ShiftedWindowAttentionV2); MACs V1's plus "
          "(2*Wh-1)*(2*Ww-1)*512*(2+num_heads) for the bias",
          _window_args(), window_shape("shifted_window_attention_v2"), "ShiftedWindowAttentionV2",
          weights=v2_weights,
          buffers=lambda a, x: {"relative_coords_table": (1, 2 * a["window_size"][0] - 1, 2 * a["window_size"][1] - 1,
                                                          2),
                                "relative_position_index": ((a["window_size"][0] * a["window_size"][1]) ** 2,)},
          macs=v2_macs, rf=rf_window_attention, inferred=lambda a, x: {"dim": x[-1]}, fresh=True,
          helpers=("ShiftedWindowAttentionV2",), category="attention"),
    Layer("patch_merging_pad", "(H, W, C) -> (H/2, W/2, 4*C), odd sizes padded: each 2x2 patch's pixels side by "
          "side, (0, 0), (1, 0), (0, 1), (1, 1) (Swin's _patch_merging_pad)",
          (), merge_shape, "PatchMergingPad", rf=rf_merge, functional=lambda a, x: f"patch_merging_pad({x})",
          helpers=("patch_merging_pad", "PatchMergingPad"), category="attention"),
)
