"""``python -m lrnn`` is the ``lrnn`` command."""

from .cli import main

main()
