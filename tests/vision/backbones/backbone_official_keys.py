"""Parameter names and shapes of the checkpoints the Vim and VMamba authors released, written out by hand from their
model code, so loading can be tested without downloading weights.

Vim: hustvl/Vim ``vim/models_mamba.py`` (``VisionMamba`` with ``layers.{i}`` blocks, ``norm_f``, middle class token)
and the vendored ``mamba-1p1p1`` ``Mamba(bimamba_type="v2")`` (``*_b`` backward parameters, no in/out bias).
VMamba: MzeroMiko/VMamba ``vmamba.py`` (``patch_embed`` and ``downsample`` as ``nn.Sequential`` indices,
``layers.{i}.blocks.{j}.op``, ``classifier``); the first v0 release used ``patch_embed.{proj,norm}``, ``ln_1``,
``self_attention``, ``downsample.{norm,reduction}``, ``norm``, ``head`` (the renames in ``VSSM._load_from_state_dict``).
"""

import math

import torch


def vim_official_shapes(embed_dim: int, depth: int, num_patches: int, num_classes: int = 1000) -> dict[str, tuple]:
    dim, inner, rank, state = embed_dim, 2 * embed_dim, math.ceil(embed_dim / 16), 16
    shapes = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, num_patches + 1, dim),
        "patch_embed.proj.weight": (dim, 3, 16, 16),
        "patch_embed.proj.bias": (dim,),
        "norm_f.weight": (dim,),
        "head.weight": (num_classes, dim),
        "head.bias": (num_classes,),
    }
    for i in range(depth):
        mixer = f"layers.{i}.mixer."
        shapes[f"layers.{i}.norm.weight"] = (dim,)
        shapes[mixer + "in_proj.weight"] = (2 * inner, dim)
        shapes[mixer + "out_proj.weight"] = (dim, inner)
        shapes[mixer + "A_log"] = shapes[mixer + "A_b_log"] = (inner, state)
        shapes[mixer + "D"] = shapes[mixer + "D_b"] = (inner,)
        for direction in ("", "_b"):
            shapes[f"{mixer}conv1d{direction}.weight"] = (inner, 1, 4)
            shapes[f"{mixer}conv1d{direction}.bias"] = (inner,)
            shapes[f"{mixer}x_proj{direction}.weight"] = (rank + 2 * state, inner)
            shapes[f"{mixer}dt_proj{direction}.weight"] = (inner, rank)
            shapes[f"{mixer}dt_proj{direction}.bias"] = (inner,)
    return shapes


def _ss2d_shapes(prefix: str, dim: int, inner: int, state: int, gate: bool, conv_bias: bool) -> dict[str, tuple]:
    rank = math.ceil(dim / 16)
    shapes = {
        prefix + "in_proj.weight": ((2 if gate else 1) * inner, dim),
        prefix + "conv2d.weight": (inner, 1, 3, 3),
        prefix + "x_proj_weight": (4, rank + 2 * state, inner),
        prefix + "dt_projs_weight": (4, inner, rank),
        prefix + "dt_projs_bias": (4, inner),
        prefix + "A_logs": (4 * inner, state),
        prefix + "Ds": (4 * inner,),
        prefix + "out_norm.weight": (inner,),
        prefix + "out_norm.bias": (inner,),
        prefix + "out_proj.weight": (dim, inner),
    }
    if conv_bias:
        shapes[prefix + "conv2d.bias"] = (inner,)
    return shapes


def vmamba_v2_official_shapes(depths, dims, ssm_ratio: float, num_classes: int = 1000) -> dict[str, tuple]:
    """``vmamba_tiny_s1l8`` etc.: forward_type ``v05_noz``, d_state 1, mlp 4, patch embed v2, downsample v3."""
    half = dims[0] // 2
    shapes = {
        "patch_embed.0.weight": (half, 3, 3, 3),
        "patch_embed.0.bias": (half,),
        "patch_embed.2.weight": (half,),
        "patch_embed.2.bias": (half,),
        "patch_embed.5.weight": (dims[0], half, 3, 3),
        "patch_embed.5.bias": (dims[0],),
        "patch_embed.7.weight": (dims[0],),
        "patch_embed.7.bias": (dims[0],),
    }
    for i, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
        for j in range(depth):
            block = f"layers.{i}.blocks.{j}."
            shapes.update({block + "norm.weight": (dim,), block + "norm.bias": (dim,)})
            shapes.update(_ss2d_shapes(block + "op.", dim, int(ssm_ratio * dim), 1, gate=False, conv_bias=False))
            shapes.update({block + "norm2.weight": (dim,), block + "norm2.bias": (dim,)})
            shapes.update({block + "mlp.fc1.weight": (4 * dim, dim), block + "mlp.fc1.bias": (4 * dim,)})
            shapes.update({block + "mlp.fc2.weight": (dim, 4 * dim), block + "mlp.fc2.bias": (dim,)})
        if i < len(depths) - 1:
            down, out = f"layers.{i}.downsample.", dims[i + 1]
            shapes.update({down + "1.weight": (out, dim, 3, 3), down + "1.bias": (out,)})
            shapes.update({down + "3.weight": (out,), down + "3.bias": (out,)})
    last = dims[-1]
    shapes.update({"classifier.norm.weight": (last,), "classifier.norm.bias": (last,)})
    shapes.update({"classifier.head.weight": (num_classes, last), "classifier.head.bias": (num_classes,)})
    return shapes


def vmamba_v0_official_shapes(depths, dims, first_release: bool, num_classes: int = 1000) -> dict[str, tuple]:
    """``vanilla_vmamba_tiny`` etc.: forward_type ``v0`` (z gate, d_state 16, conv bias), no MLP, patchify stem,
    patch merging; with the current names, or those of the first release."""
    if first_release:
        stem, norm, mixer, (merge_norm, reduction) = ("proj", "norm"), "ln_1", "self_attention", ("norm", "reduction")
    else:
        stem, norm, mixer, (merge_norm, reduction) = ("0", "2"), "norm", "op", ("1", "2")
    shapes = {
        f"patch_embed.{stem[0]}.weight": (dims[0], 3, 4, 4),
        f"patch_embed.{stem[0]}.bias": (dims[0],),
        f"patch_embed.{stem[1]}.weight": (dims[0],),
        f"patch_embed.{stem[1]}.bias": (dims[0],),
    }
    for i, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
        for j in range(depth):
            block = f"layers.{i}.blocks.{j}."
            shapes.update({f"{block}{norm}.weight": (dim,), f"{block}{norm}.bias": (dim,)})
            shapes.update(_ss2d_shapes(f"{block}{mixer}.", dim, 2 * dim, 16, gate=True, conv_bias=True))
        if i < len(depths) - 1:
            down = f"layers.{i}.downsample."
            shapes.update({f"{down}{merge_norm}.weight": (4 * dim,), f"{down}{merge_norm}.bias": (4 * dim,)})
            shapes[f"{down}{reduction}.weight"] = (dims[i + 1], 4 * dim)
    last, classifier = dims[-1], "" if first_release else "classifier."
    shapes.update({f"{classifier}norm.weight": (last,), f"{classifier}norm.bias": (last,)})
    shapes.update({f"{classifier}head.weight": (num_classes, last), f"{classifier}head.bias": (num_classes,)})
    return shapes


def state_dict_from(shapes: dict[str, tuple], device: str = "cpu") -> dict[str, torch.Tensor]:
    """Distinct random values per tensor (empty ones on ``meta``), standing in for the released weights."""
    if device == "meta":
        return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}
    generator = torch.Generator().manual_seed(0)
    return {key: torch.randn(shape, generator=generator) for key, shape in shapes.items()}


def parameter_count(shapes: dict[str, tuple]) -> int:
    return sum(math.prod(shape) for shape in shapes.values())
