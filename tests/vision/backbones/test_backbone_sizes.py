"""Parameter counts of every registered size against the official models and the papers, and VMamba's FLOPs.

Full-size models are built on the ``meta`` device (no memory, no compute). The official counts come from the
hand-written key lists of the released checkpoints; the papers round to whole millions (Vim README: 7M / 26M / 98M,
also for the stride-8 "+" models; VMamba: 30M / 50M / 89M and 23M for v0) and FLOPs to 0.1 G at 224 px.
"""

import pytest
import timm
import torch
from backbone_official_keys import (
    parameter_count,
    vim_official_shapes,
    vmamba_v0_official_shapes,
    vmamba_v2_official_shapes,
)
from lrnn.vision.backbones import SS2D, count_flops, selective_scan_flops

VIM = {  # name: (D, patches at 224 px, paper's millions)
    "vim_tiny_patch16_224": (192, 196, 7),
    "vim_tiny_patch16_stride8_224": (192, 729, 7),
    "vim_small_patch16_224": (384, 196, 26),
    "vim_small_patch16_stride8_224": (384, 729, 26),
    "vim_base_patch16_224": (768, 196, 98),
}
VMAMBA = {  # name: (official shapes, paper's millions, paper's GFLOPs)
    "vmamba_tiny_s1l8": (vmamba_v2_official_shapes((2, 2, 8, 2), (96, 192, 384, 768), 1.0), 30, 4.9),
    "vmamba_small_s2l15": (vmamba_v2_official_shapes((2, 2, 15, 2), (96, 192, 384, 768), 2.0), 50, 8.7),
    "vmamba_base_s2l15": (vmamba_v2_official_shapes((2, 2, 15, 2), (128, 256, 512, 1024), 2.0), 89, 15.4),
    "vmamba_tiny_v0": (vmamba_v0_official_shapes((2, 2, 9, 2), (96, 192, 384, 768), first_release=False), 23, 5.6),
}


def _meta_model(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return timm.create_model(name)


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", VIM)
def test_vim_parameters_match_the_official_model_and_the_paper(name):
    dim, patches, paper_millions = VIM[name]
    count = _count(_meta_model(name))
    assert count == parameter_count(vim_official_shapes(dim, 24, patches))
    assert round(count / 1e6) == paper_millions


@pytest.mark.parametrize("name", VMAMBA)
def test_vmamba_parameters_match_the_official_model_and_the_paper(name):
    shapes, paper_millions, _ = VMAMBA[name]
    count = _count(_meta_model(name))
    assert count == parameter_count(shapes)
    assert round(count / 1e6) == paper_millions


@pytest.mark.parametrize("name", VMAMBA)
def test_vmamba_flops_at_224_match_the_paper(name):
    assert round(count_flops(_meta_model(name)) / 1e9, 1) == VMAMBA[name][2]


def test_count_flops_of_one_ss2d_by_hand():
    """Every term of the convention, for one SS2D on a 5 x 7 map: multiply-adds of the projections and the
    depthwise conv, 5 per LayerNorm element, and ``9 B L D N + B L D`` for the grouped scan (D = 4 routes x E)."""
    batch, height, width, dim, inner, state = 2, 5, 7, 16, 24, 3
    ss2d = SS2D(dim, d_state=state, ssm_ratio=inner / dim)
    steps, rank = height * width, ss2d.dt_rank
    expected = batch * steps * (
        dim * inner  # in_proj
        + inner * 9  # depthwise 3x3
        + 4 * inner * (rank + 2 * state)  # x_proj, per route
        + 4 * rank * inner  # dt_proj, per route
        + inner * dim  # out_proj
        + 5 * inner  # out_norm
    ) + selective_scan_flops(batch, steps, 4 * inner, state)
    assert selective_scan_flops(batch, steps, 4 * inner, state) == batch * steps * 4 * inner * (9 * state + 1)
    assert count_flops(ss2d, (height, width, dim), batch_size=batch) == expected


def test_count_flops_counts_both_directions_of_the_vim_mixer():
    model = timm.create_model("vim_tiny_patch16_224", img_size=32, embed_dim=32, depth=1, num_classes=0)
    mixer = model.blocks[0].mixer
    tokens, inner, rank = 5, mixer.d_inner, mixer.dt_rank
    matmuls = (
        4 * 16 * 16 * 3 * 32  # patch conv
        + tokens * 32 * 2 * inner  # in_proj
        + 2 * tokens * inner * (4 + rank + 2 * 16 + rank)  # per direction: conv1d, x_proj, dt_proj
        + tokens * inner * 32  # out_proj
    )
    scans = 2 * selective_scan_flops(1, tokens, inner, 16)
    assert count_flops(model, (3, 32, 32)) == matmuls + scans
