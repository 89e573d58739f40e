"""``python -m lrnn.configs``: list the packaged recipes; ``python -m lrnn.configs NAME`` prints one's path."""

import sys

from . import list_recipes, recipe_path

if len(sys.argv) > 2:
    sys.exit("usage: python -m lrnn.configs [<domain>/<recipe>.yaml]")
print(recipe_path(sys.argv[1]) if len(sys.argv) == 2 else "\n".join(list_recipes()))
