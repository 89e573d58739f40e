"""Maps the code folders at the repository root onto sub-packages of one import name, ``lrnn``.

``core/`` installs as ``lrnn.core``, ``configs/`` as ``lrnn.configs`` (YAML recipes as package data), and so
on; ``pyproject.toml`` holds everything else.
"""

from setuptools import find_packages, setup

ROOT_FOLDERS = ["core", "kernels", "vision", "pointcloud", "audio", "timeseries", "configs", "benchmarks"]

package_dir = {"lrnn": "lrnn", **{f"lrnn.{folder}": folder for folder in ROOT_FOLDERS}}
packages = ["lrnn"] + [
    f"lrnn.{folder}{'.' + sub if sub else ''}" for folder in ROOT_FOLDERS for sub in ["", *find_packages(folder)]
]

setup(package_dir=package_dir, packages=packages)
