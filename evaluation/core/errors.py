"""The base class of the suite's bad-input errors.

Every error that the suite raises because of what it was given (config, command line, data,
weights, synthetic sets) derives from :class:`InputError`, with a one-line message that names the
problem and then, after a ``;``, the fix. The job entry points (``evaluation/core/cli.py``) end such an
error as that one line and exit status 2; any other exception is a bug and keeps its traceback.

Why a class of its own rather than catching ``ValueError``: the libraries underneath (torch,
numpy, scikit-learn, diffusers) raise ``ValueError`` and ``RuntimeError`` for their own failures,
and a bug surfacing as one of those must keep its traceback; only an error the suite raised on
purpose, with a message written for the user, may drop it. ``InputError`` is still a
``ValueError`` (and the subclasses keep their historical second base, e.g. ``FileNotFoundError``
for missing weights) so that callers catching the built-in types keep working.
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad input to the suite; the message is one line: ``<problem>; <fix>``."""


class MissingWeightsError(InputError, FileNotFoundError):
    """Pretrained weights absent offline; the message names the file and where to put it."""


class WeightsMismatchError(InputError, RuntimeError):
    """A checkpoint whose tensors do not fit the network that the config names."""


def load_matching_weights(model, state: dict, source: object, fix: str) -> None:
    """``model.load_state_dict(state)``; a checkpoint of another architecture (torch's multi-line
    "size mismatch" / "Missing key(s)" RuntimeError) becomes one :class:`WeightsMismatchError` line
    naming ``source``, torch's first complaint and ``fix``."""
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsMismatchError(f"{source}: weights of another architecture than {type(model).__name__} "
                                   f"({first_complaint(err)}); {fix}") from None


def first_complaint(err: RuntimeError, limit: int = 200) -> str:
    """The first line of torch's multi-line ``load_state_dict`` error after its header, shortened."""
    complaints = [line.strip().rstrip(".") for line in str(err).splitlines()[1:] if line.strip()] or [str(err)]
    return complaints[0] if len(complaints[0]) <= limit else complaints[0][:limit - 3] + "..."
