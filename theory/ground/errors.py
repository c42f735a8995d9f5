"""Every error type of the project, at the ground floor: theory, simulations, figures and the
command line all import them from here, and the command line maps each to one line, exit status 2."""
import math


class ParameterError(ValueError):
    """A parameter outside its valid range; the message names both.

    ``parameter`` is the name as the API spells it (the command line maps it to a flag),
    ``valid`` a short description of the valid range, ``value`` what was given.
    """

    def __init__(self, parameter: str, value, valid: str):
        self.parameter, self.value, self.valid = parameter, value, valid
        super().__init__(f"{parameter} = {value!r} is out of range: {valid}")


def require_int(name: str, value, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` as an int, or raise ParameterError naming ``name`` and the range."""
    valid = f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
    if isinstance(value, bool) or not float(value).is_integer():
        raise ParameterError(name, value, valid)
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        raise ParameterError(name, value, valid)
    return value


SEED_MAX = 2**31 - 1  # the one seed range of every command: a C int, which every generator here takes


def require_seed(name: str, value) -> int:
    """``value`` as a seed, 0 … SEED_MAX, the one seed range of every command; else ParameterError naming ``name``."""
    return require_int(name, value, 0, SEED_MAX)


def require_real(name: str, value, minimum: float | None = None, strict: bool = False) -> float:
    """Return ``value`` as a finite float >= minimum (> minimum if strict), else raise."""
    bound = "" if minimum is None else (f" > {minimum:g}" if strict else f" >= {minimum:g}")
    valid = "a finite real number" + bound
    value = float(value)
    if not math.isfinite(value):
        raise ParameterError(name, value, valid)
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        raise ParameterError(name, value, valid)
    return value


class NoClosedForm(NotImplementedError):
    """Raised where the toolkit has no exact expression and only simulation answers."""


class DivergenceError(FloatingPointError):
    """Meta-training produced a NaN or infinite loss: the step sizes are too large for this model."""

    def __init__(self, iteration: int, value: float, what: str = "meta-loss"):
        self.iteration, self.value = iteration, value
        super().__init__(f"the {what} became {value} at meta-iteration {iteration}: training diverged")


class DatasetError(Exception):
    """A dataset file is missing or does not parse; the one-line message says what, where, the
    expected layout and how to obtain it."""


class UsageError(Exception):
    """Bad command-line input that no single library parameter names: printed as one line, exit status 2."""
