"""How every job entry point ends on bad input: one line on stderr, exit status 2, no traceback.

``@entry_point`` wraps the ``main(argv=None)`` of a rule's script (``workflow/scripts/<rule>.py``).
Two kinds of failure become the single last line ``<rule>.py: error: <problem>; <fix>`` and exit
status 2 (argparse's status for usage errors):

* an :class:`~evaluation.core.errors.InputError`: the suite refused its input, the message says why;
* an ``OSError`` of the file system around the job, which no code change fixes:
  ``ENOSPC``/``EDQUOT``/``EFBIG`` (the disk, the quota or the file-size limit is full: free space
  and re-run), ``EACCES``/``EPERM``/``EROFS`` (a path the job must create is not writable, or an
  input is not readable: choose a writable results directory or fix the permissions) and
  ``ENOENT``/``ENOTDIR`` (an input path named on the command line does not exist).

Every other exception is a bug and propagates with its traceback. Outputs are written through
``evaluation.core.artifacts.atomic_path``, so a job that fails this way leaves nothing under results/.
(torch's and safetensors' writers raise their own exception types on a full disk:
``evaluation.core.artifacts.save_torch`` and ``os_errors_naming`` turn them into the ``OSError``.)

The scripts' arguments are checked by argparse ``type=`` functions of this module
(:func:`job_spec`, :func:`positive_int`, :func:`non_negative_int`): a bad value ends in argparse's own
one ``error:`` line and exit status 2 before the job reads anything. The arguments every script shares
(``--out``, ``--device``, ``--threads``) are declared by :func:`add_job_arguments` and applied by
:func:`apply_job_arguments`.
"""
from __future__ import annotations

import argparse
import errno
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .errors import InputError

EXIT_BAD_INPUT = 2
FULL = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
        errno.EFBIG: "the file-size limit is reached"}
DENIED = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
          errno.EROFS: "read-only file system"}
MISSING = (errno.ENOENT, errno.ENOTDIR)
JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}

Main = TypeVar("Main", bound=Callable[..., object])


def os_error_message(err: OSError) -> str | None:
    """One line ``<problem>; <fix>`` for a file-system failure outside the code, else None."""
    path = err.filename2 if err.filename2 is not None else err.filename
    where = f" {path}" if path is not None else " a file"
    if err.errno in FULL:
        return (f"cannot write{where}: {FULL[err.errno]}; free space on that disk (or raise the quota or "
                f"file-size limit, ulimit -f) and re-run")
    if err.errno in DENIED:
        reading = err.errno != errno.EROFS and err.filename2 is None and path is not None and Path(path).exists()
        if reading:   # atomic writes only ever create new paths, so an existing one was being read
            return f"cannot read{where}: {DENIED[err.errno]}; fix its permissions"
        return (f"cannot write{where}: {DENIED[err.errno]}; choose a writable results directory (run "
                f"snakemake from another directory, or -d DIR) or fix its permissions")
    if err.errno in MISSING and path is not None:
        return f"{path}: no such file or directory; check the path, or re-run the job that writes it"
    return None


def json_object(text: str) -> dict:
    """The JSON object ``text`` holds (a job's config slice), else one argparse error line (:func:`job_spec`)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err}); pass a JSON object, e.g. "
                                         f"'{{\"dataset\": \"digits\"}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"a JSON {JSON_TYPES[type(value)]} ({text[:40]!r}), not an object; "
                                         f"pass a JSON object {{...}} (the job's config slice)")
    return value


def _has_key(spec: dict, key: str) -> bool:
    """Whether ``spec`` holds ``key``; ``a.b`` is key ``b`` of the object under key ``a``."""
    value = spec
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def job_spec(*keys: str) -> Callable[[str], dict]:
    """argparse type of a job's ``--spec``: the JSON object (:func:`json_object`) holding every one of
    ``keys`` (``a.b``: key ``b`` of the object under ``a``), the keys the job reads without a default;
    else one error line naming the missing ones. ``keys`` stays on the type (``.keys``), so that tests
    hold it to the spec the rule writes."""
    def spec(text: str) -> dict:
        value = json_object(text)
        missing = [key for key in keys if not _has_key(value, key)]
        if missing:
            raise argparse.ArgumentTypeError(
                f"missing key{'s' * (len(missing) > 1)} {', '.join(missing)}, read by the job; the spec is the "
                f"job's config slice written by its rule: run the job through snakemake, or pass the keys")
        return value
    spec.keys = keys
    return spec


def _integer_from(text: str, low: int) -> int:
    """``text`` as an integer of at least ``low``, else an argparse error naming the value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; give an integer >= {low}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} is less than {low}; give an integer >= {low}")
    return value


def positive_int(text: str) -> int:
    """argparse type of a count (``--ipc``, ``--threads``, a size): an integer >= 1."""
    return _integer_from(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type of a seed (``--seed``; NumPy refuses negative ones) or a count that may be 0."""
    return _integer_from(text, 0)


def add_job_arguments(parser: argparse.ArgumentParser, *, device: bool = True, out_required: bool = True,
                      out_help: str | None = None, out_nargs: str | None = None) -> None:
    """The arguments of every rule's script: ``--out`` (the job's output path, or paths with ``out_nargs``),
    and, with ``device``, the job's ``--device`` (default cpu; ``auto``: cuda when available) and its CPU
    ``--threads`` (default 1)."""
    parser.add_argument("--out", required=out_required, type=Path, help=out_help, nargs=out_nargs)
    if device:
        parser.add_argument("--device", default="cpu")
        parser.add_argument("--threads", type=positive_int, default=1)


def apply_job_arguments(args: argparse.Namespace) -> str:
    """Limit torch to ``args.threads`` CPU threads and return the device ``args.device`` resolves to."""
    # imported here: gpu_slots, the GPU jobs' wrapper, imports this module and stays free of torch
    import torch

    from .artifacts import resolve_device

    torch.set_num_threads(args.threads)
    return resolve_device(args.device)


def _program(main: Callable) -> str:
    """What the user ran: the file of the script that defines ``main`` (``distill.py`` for
    ``workflow/scripts/distill.py``), as argparse names it in its own error lines."""
    return Path(main.__code__.co_filename).name


def entry_point(main: Main) -> Main:
    """``main`` that ends an input or file-system error as one line and exit status 2 (module docstring)."""
    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except InputError as err:
            message = str(err)
        except OSError as err:
            message = os_error_message(err)
            if message is None:
                raise
        sys.stdout.flush()   # stdout and stderr often share one log: the error must be its last line
        print(f"{_program(main)}: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_BAD_INPUT)
    return run
