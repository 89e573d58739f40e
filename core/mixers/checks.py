"""Constructor and state checks shared by the mixers of the GLA family (``gla``, ``retnet``, ``mamba2``, ``rwkv6``,
``mlstm``), whose states are a ``NamedTuple`` of tensors per mixer."""

from typing import NamedTuple


def check_mixer_state(state: object, state_type: type[NamedTuple], expected: dict[str, tuple[int, ...] | None]) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``state`` is None or a ``state_type`` with the ``expected`` fields.

    ``expected`` maps each field to its shape, or to None where the field must be None (e.g. no short conv).
    """
    if state is None:
        return
    if not isinstance(state, state_type):
        raise TypeError(f"state must be a {state_type.__name__} or None, got {type(state).__name__}")
    for field, shape in expected.items():
        value = getattr(state, field)
        if shape is None:
            if value is not None:
                raise ValueError(
                    f"state.{field} must be None for this mixer's configuration, got {type(value).__name__}"
                )
            continue
        if not hasattr(value, "is_floating_point") or not value.is_floating_point():
            raise TypeError(
                f"state.{field} must be a floating tensor {list(shape)}, got {getattr(value, 'dtype', value)}"
            )
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"state.{field} must have shape {list(shape)}, got {tuple(value.shape)}")


def expanded_dim(name: str, d_model: int, expand: float, num_heads: int) -> int:
    """``d_model * expand``, which must be a whole positive multiple of ``num_heads`` (``ValueError`` otherwise)."""
    dim = d_model * expand
    if dim != int(dim) or int(dim) < 1 or int(dim) % num_heads:
        raise ValueError(
            f"d_model * {name} = {d_model} * {expand} must be a positive multiple of num_heads = {num_heads}"
        )
    return int(dim)


def check_positive_int(name: str, value: object) -> int:
    """``value`` must be a positive int (not a bool); ``ValueError`` naming ``name`` otherwise."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value
