"""LightningCLI recipes, shipped inside the package as data: ``configs/<domain>/<recipe>.yaml``.

They are installed with the code (``pip install .`` or a wheel), so a recipe is found the same way from a clone, an
editable install or site-packages::

    from lrnn.configs import recipe_path
    recipe_path("timeseries/s5_synthetic.yaml")  # a pathlib.Path to pass to ``lrnn fit --config``

``python -m lrnn.configs`` lists them; ``python -m lrnn.configs NAME`` prints one's path.
"""

from importlib.resources import files
from pathlib import Path


def list_recipes() -> list[str]:
    """Every recipe as ``"<domain>/<name>.yaml"``, sorted."""
    root = Path(str(files(__name__)))
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*.yaml"))


def recipe_path(name: str) -> Path:
    """The file of recipe ``name`` (``"<domain>/<name>.yaml"``, as ``list_recipes`` gives it)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str such as 'timeseries/s5_synthetic.yaml', got {type(name).__name__}")
    path = Path(str(files(__name__).joinpath(*name.split("/"))))
    if name not in list_recipes() or not path.is_file():
        raise ValueError(f"no recipe {name!r} in lrnn.configs; available: {list_recipes()}")
    return path
