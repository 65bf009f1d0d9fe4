"""The one exception type the command line turns into a one-line error."""


class DigrError(Exception):
    """A user-facing error: bad input, missing file, incompatible checkpoint or dataset."""


def check_int(name: str, value: object, *, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer (Python or NumPy; not a bool) in
    ``[minimum, maximum]`` (no upper bound for None), else :class:`DigrError` naming ``name``: the
    one check behind every count-like setting, so that a string, None or 2.5 is refused in one
    line instead of raising a TypeError."""
    import numbers

    if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum
            or (maximum is not None and value > maximum)):
        if maximum is not None:
            kind = f"an integer in [{minimum}, {maximum}]"
        else:
            kind = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"an integer >= {minimum}")
        raise DigrError(f"{name} must be {kind}, got {value!r}")
    return int(value)


MAX_SEED = 2**32 - 1
"""Largest seed digr accepts (NumPy's legacy seeding and Gymnasium's resets take 32 bits)."""
MAX_EPISODES = 1_000_000
"""Most episodes one evaluation runs (their returns are kept in memory)."""
MAX_STATES = 10_000_000
"""Most states one command collects or explains."""
MAX_ENVS = 1024
"""Most environments one process may step (each holds a simulator and its frames)."""


def check_finite(name: str, value: object) -> float:
    """``value`` as a float if it is a finite real number (not a bool), else :class:`DigrError`:
    NaN passes every ``<`` / ``>`` range check, so it needs its own."""
    import math
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise DigrError(f"{name} must be a finite number, got {value!r}")
    return float(value)


MAX_SOFTPLUS_BETA = 1e6
"""Largest softplus beta digr takes (beyond it softplus is ReLU to float32 rounding)."""


def check_softplus_beta(name: str, value: object, *, zero: str = "ReLU") -> float:
    """``value`` as a float if it is 0 (whose meaning ``zero`` names in the message) or a beta in
    ``(0, MAX_SOFTPLUS_BETA]``, else :class:`DigrError`; one check for every option that takes a
    softplus beta (the network's units, the student's, the attack's smooth twin)."""
    import math
    import numbers

    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or not 0 <= value <= MAX_SOFTPLUS_BETA):
        raise DigrError(f"{name} must be 0 ({zero}) or a number in (0, {MAX_SOFTPLUS_BETA:g}], got {value!r}")
    return float(value)
