"""The mixer registry: build by name, clear errors for unknown names and bad registrations."""

import pytest
import torch
from lrnn.core.mixers import S5, Mixer, available_mixers, build_mixer, register_mixer, registry


def test_s5_is_registered():
    assert "s5" in available_mixers()
    assert isinstance(build_mixer("s5", d_model=4), S5)


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown mixer 'nope'.*s5"):
        build_mixer("nope", d_model=4)


def test_register_and_build_a_new_mixer(monkeypatch):
    monkeypatch.setattr(registry, "_MIXERS", dict(registry._MIXERS))

    @register_mixer("identity")
    class Identity(Mixer):
        def forward(self, x, state=None):
            return x, state

        def step(self, x_t, state=None):
            return x_t, state

    mixer = build_mixer("identity", d_model=3)
    x = torch.randn(2, 4, 3)
    assert mixer(x)[0] is x and "identity" in available_mixers()


def test_bad_registrations(monkeypatch):
    monkeypatch.setattr(registry, "_MIXERS", dict(registry._MIXERS))
    with pytest.raises(ValueError, match="already registered"):
        register_mixer("s5")(type("Other", (Mixer,), {}))
    with pytest.raises(TypeError, match="Mixer subclasses"):
        register_mixer("linear")(torch.nn.Linear)
    with pytest.raises(ValueError, match="non-empty"):
        register_mixer("")
