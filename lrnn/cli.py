"""The ``lrnn`` command: LightningCLI for ``fit``/``validate``/``test``/``predict``, plus ``bench`` and ``demo``.

``lrnn fit --config configs/timeseries/s5_synthetic.yaml`` trains a recipe (any LightningModule and
LightningDataModule, chosen by ``class_path`` in the YAML); ``lrnn bench scan`` runs
``lrnn.benchmarks.scan.main``; ``lrnn demo`` trains and tests the demo recipes and writes ``runs/demo/``.
"""

import importlib
import pkgutil
import sys

from jsonargparse import ArgumentParser
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

import lrnn.benchmarks

SUMMARIES = {  # one line each in `lrnn --help` (at most 54 characters)
    "fit": "Train a recipe: --config YAML, --key=value overrides.",
    "validate": "Evaluate a recipe on its validation set.",
    "test": "Evaluate a recipe on its test set.",
    "predict": "Run the model's predict_step over the recipe's data.",
    "bench": "Run a benchmark: lrnn bench <name> [args].",
    "demo": "Train + test the demo (~2.5 min CPU) into runs/demo/.",
}
OWN_COMMANDS = ("bench", "demo")
DESCRIPTION = "lrnn: linear-recurrence scans in Triton and the models built on them. Recipes: lrnn fit --config X.yaml"


class LrnnCLI(LightningCLI):
    """LightningCLI in subclass mode; its help also lists the commands that ``main`` dispatches itself.

    ``run=False`` parses one recipe without sub-commands and only builds the trainer, model and data (``lrnn demo``).
    """

    def __init__(self, args: list[str] | None = None, run: bool = True, prog: str = "lrnn") -> None:
        super().__init__(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            # validation and test under no_grad rather than inference mode: torchmetrics states reset in inference
            # mode (trainer.validate) cannot be updated in place by the validation inside a later fit
            trainer_defaults={"inference_mode": False},
            parser_kwargs={"prog": prog, "description": DESCRIPTION},
            args=args,
            run=run,
        )

    def _add_subcommands(self, parser, **kwargs) -> None:
        """Lightning's four Trainer commands with one-line summaries, then ``bench`` and ``demo`` (help only)."""
        self._subcommand_parsers = {}
        subcommands = parser.add_subcommands()
        for name in self.subcommands():
            sub_kwargs = {"description": SUMMARIES[name], **kwargs.get(name, {})}
            self._subcommand_parsers[name] = self._prepare_subcommand_parser(self.trainer_class, name, **sub_kwargs)
            subcommands.add_subcommand(name, self._subcommand_parsers[name], help=SUMMARIES[name])
        for name in OWN_COMMANDS:
            subcommands.add_subcommand(name, ArgumentParser(description=SUMMARIES[name]), help=SUMMARIES[name])


def _modules() -> list[str]:
    """The module names under ``lrnn.benchmarks``, benchmarks and their helpers alike (nothing imported)."""
    return [info.name for info in pkgutil.iter_modules(lrnn.benchmarks.__path__) if not info.ispkg]


def _benchmark(name: str):
    """The module ``lrnn.benchmarks.<name>`` if it is a benchmark (it has ``main(argv=None)``; the others are their
    helpers: profiling, the stream kernels), else None."""
    module = importlib.import_module(f"lrnn.benchmarks.{name}")
    return module if callable(getattr(module, "main", None)) else None


def available_benchmarks() -> list[str]:
    """Names of the benchmarks under ``lrnn.benchmarks`` (importing each module once)."""
    return sorted(name for name in _modules() if _benchmark(name) is not None)


def bench(argv: list[str]) -> None:
    """``lrnn bench <name> [args]``: run ``lrnn.benchmarks.<name>.main(args)``; only that module is imported."""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: lrnn bench <name> [args]   (lrnn bench <name> --help for its options)")
        print(f"benchmarks: {', '.join(available_benchmarks()) or 'none installed'}")
        return
    benchmark = _benchmark(argv[0]) if argv[0] in _modules() else None
    if benchmark is None:
        raise SystemExit(f"lrnn bench: unknown benchmark {argv[0]!r}; available: {', '.join(available_benchmarks())}")
    benchmark.main(argv[1:])


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lrnn`` console script."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "bench":
        bench(args[1:])
    elif args and args[0] == "demo":
        from .demo import run_demo  # imported here: it sets matplotlib's backend

        run_demo(args[1:])
    else:
        LrnnCLI(args=argv)
