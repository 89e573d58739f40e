"""Recipes ship with the package, are found by name, and each one is a complete, valid LightningCLI config."""

import sys
from pathlib import Path

import pytest
from lrnn.configs import list_recipes, recipe_path

from lrnn.cli import main

SOURCE_CONFIGS = Path(__file__).parents[1] / "configs"


def test_every_yaml_in_the_source_tree_is_a_listed_recipe():
    in_source = sorted(path.relative_to(SOURCE_CONFIGS).as_posix() for path in SOURCE_CONFIGS.rglob("*.yaml"))
    assert in_source and list_recipes() == in_source
    assert {"timeseries/s5_synthetic.yaml", "demo/timeseries.yaml"} <= set(in_source)


def test_recipe_path_finds_a_file_and_refuses_unknown_names():
    assert recipe_path("timeseries/s5_synthetic.yaml").is_file()
    with pytest.raises(ValueError, match=r"no recipe 'timeseries/none.yaml'.*s5_synthetic"):
        recipe_path("timeseries/none.yaml")
    with pytest.raises(TypeError, match="str"):
        recipe_path(Path("timeseries/s5_synthetic.yaml"))


@pytest.mark.parametrize("recipe", list_recipes())
def test_recipe_is_a_complete_config(recipe, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lrnn"])
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(recipe_path(recipe)), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "class_path: lrnn." in printed and "max_epochs" in printed
