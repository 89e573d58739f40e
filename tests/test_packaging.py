"""A built wheel installs every sub-package and every recipe, and they import from the install, not the source."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[1]
TOP_LEVEL = ["core", "kernels", "vision", "pointcloud", "audio", "timeseries", "configs", "benchmarks"]
LEFT_BEHIND = shutil.ignore_patterns(".*", "runs", "build", "dist", "*.egg-info", "__pycache__", "tests", "notebooks")

CHECK = """
import importlib, importlib.resources, pkgutil, sys
from pathlib import Path
import yaml
target = Path(sys.argv[1]).resolve()
import lrnn
names = ["lrnn"] + [f"lrnn.{folder}" for folder in sys.argv[2].split(",")]
names += [info.name for info in pkgutil.walk_packages(lrnn.__path__, "lrnn.") if not info.name.endswith("__main__")]
for name in sorted(set(names)):
    module = importlib.import_module(name)
    origin = Path(module.__file__).resolve()
    assert origin.is_relative_to(target), f"{name} imported from {origin}, not from {target}"
    print("module", name)
def yamls(node, prefix):
    for child in node.iterdir():
        if child.is_dir():
            yield from yamls(child, f"{prefix}{child.name}/")
        elif child.name.endswith(".yaml"):
            yield f"{prefix}{child.name}", child
for name, resource in yamls(importlib.resources.files("lrnn.configs"), ""):
    assert isinstance(yaml.safe_load(resource.read_text()), dict), name
    print("recipe", name)
"""


def test_wheel_installs_every_subpackage_and_recipe(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=LEFT_BEHIND)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", wheels],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("lrnn-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        entry_points = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        assert "lrnn = lrnn.cli:main" in archive.read(entry_points).decode()
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", target, wheel], check=True, cwd=tmp_path
    )

    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(target), ",".join(TOP_LEVEL)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    imported = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("module ")}
    recipes = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("recipe ")}
    for folder in TOP_LEVEL:
        assert f"lrnn.{folder}" in imported
        for package in (ROOT / folder).rglob("__init__.py"):
            dotted = ".".join(package.parent.relative_to(ROOT / folder).parts)
            assert f"lrnn.{folder}{'.' + dotted if dotted else ''}" in imported, package
    assert recipes == {path.relative_to(ROOT / "configs").as_posix() for path in (ROOT / "configs").rglob("*.yaml")}
