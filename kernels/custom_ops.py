"""``torch.library`` custom ops that skip the dispatcher in eager calls nothing traces or records.

Every Triton launch in lrnn is a custom op, so that ``torch.compile`` and ``torch.export`` trace through it and
autograd records it. In an eager call without gradients the op only adds ``torch.library``'s dispatch: 25 µs a
call on this project's 2-core CPU against 4 µs for calling the same body as a Python function (session 10), which
adds up in models that wait on the host (VMamba-T at 1024 px: 132 custom-op calls a forward). ``eager_custom_op``
registers the op as ``torch.library.custom_op`` does and calls its body directly when nothing needs the op:
not under ``torch.compile`` or export, only plain tensors (no fake or functional ones), and no input that
needs a gradient while grad mode is on.
"""

from collections.abc import Callable

import torch

_PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)


def needs_the_op(args: tuple) -> bool:
    """Whether a call with ``args`` must go through the dispatcher (module docstring)."""
    if torch.compiler.is_compiling():
        return True
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if any(type(t) not in _PLAIN_TENSORS for t in tensors):
        return True
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


class EagerCustomOp:
    """A custom op (``.op``, the ``torch.library.custom_op`` object, for ``opcheck``) and its body: calling it runs
    the op where ``needs_the_op`` says so, else the body. ``register_fake`` and ``register_autograd`` are the
    op's."""

    def __init__(self, name: str, body: Callable, mutates_args: tuple = ()) -> None:
        self.op = torch.library.custom_op(name, body, mutates_args=mutates_args)
        self.body = body
        self.register_fake = self.op.register_fake
        self.register_autograd = self.op.register_autograd

    def __call__(self, *args):
        return self.op(*args) if needs_the_op(args) else self.body(*args)


def eager_custom_op(name: str, mutates_args: tuple = ()) -> Callable[[Callable], EagerCustomOp]:
    """Decorator, as ``torch.library.custom_op(name, mutates_args=...)``, returning an ``EagerCustomOp``."""
    return lambda body: EagerCustomOp(name, body, mutates_args)
