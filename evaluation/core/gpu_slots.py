"""GPU slots: give each local GPU job a GPU of its own.

Usage: ``python -m evaluation.core.gpu_slots [--slots N] [--gpus 0,1,2,3] [--lock-dir DIR] -- CMD ARG...``

Snakemake's ``--resources gpu=N`` caps how many GPU jobs run at once but does not tell a local job
which GPU to use, so every job opens ``cuda:0``. Put in front of a GPU job's command, this takes
one of N slots (an exclusive ``flock`` on a lock file per slot, trying every slot without blocking,
then polling), sets ``CUDA_VISIBLE_DEVICES`` to the slot's GPU and replaces itself with the command.

- Settings: ``--slots`` or ``$DMGD_GPU_SLOTS`` (default 0); ``--gpus`` or ``$DMGD_GPUS`` (default
  ``0..N-1``; slot i takes GPU ``gpus[i % len(gpus)]``, so ``--slots 8 --gpus 0,1,2,3`` puts two
  jobs on each GPU); ``--lock-dir`` or ``$DMGD_GPU_SLOT_DIR`` (default a per-user folder in the
  system temp dir).
- It steps aside (runs the command unchanged) with 0 slots, or when ``CUDA_VISIBLE_DEVICES`` is
  already set: a cluster scheduler (SLURM) or the user has chosen the job's GPUs.
- Lock files are named after the GPU, not the slot number, and the default folder is per machine,
  not per workflow: a GPU is a machine's resource, so two runs on one machine (two clones, or a
  wrapped command run by hand) that share a GPU also share its lock.
- ``exec``, not a child process: the command keeps this PID, so Snakemake's signals reach it and
  its exit status is the job's, with no forwarding code. The lock belongs to the open file
  description, which the command inherits; the kernel drops it when the last process holding it
  exits, however it ends (SIGKILL and the OOM killer included). A child process would need signal
  forwarding, and if the wrapper were killed the child would keep its GPU while the slot looked
  free. ``flock``, not POSIX ``fcntl``/``lockf`` locks: a ``flock`` lock is shared by every
  process that inherits the descriptor (the GPU stays taken while e.g. forked data-loader workers
  still run), and closing some other descriptor of the same file does not drop it.

One line on stderr (the job's log) names the slot taken or why none was.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from .cli import non_negative_int

PROG = "gpu_slots"
GPU_ID = re.compile(r"[A-Za-z0-9_.-]+")  # an index or a GPU/MIG UUID, as CUDA_VISIBLE_DEVICES takes


class UsageError(ValueError):
    """A bad argument or environment variable: reported in one line, exit status 2."""


def parse_gpus(text: str, source: str) -> list[str]:
    """GPU ids from a comma-separated list (``"0,1,2,3"``); each once."""
    gpus = [g.strip() for g in text.split(",")]
    bad = [g for g in gpus if not GPU_ID.fullmatch(g)]
    if bad:
        raise UsageError(f"{source} {text!r}: {bad[0]!r} is not a GPU id; give e.g. 0,1,2,3")
    if len(set(gpus)) != len(gpus):
        raise UsageError(f"{source} {text!r} lists a GPU twice; list each once and raise "
                         "--slots to put several jobs on one GPU")
    return gpus


def slot_table(slots: int, gpus: list[str]) -> list[tuple[str, str]]:
    """(GPU id, lock file name) of each slot; slots go round-robin over the GPUs."""
    return [(gpus[i % len(gpus)], f"gpu{gpus[i % len(gpus)]}.slot{i // len(gpus)}.lock")
            for i in range(slots)]


def default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"dmgd-gpu-slots-{os.getuid()}"


def acquire(lock_dir: Path, names: list[str], poll: float) -> tuple[int, int, float]:
    """Lock the first free slot, waiting for one if all are taken: (slot, locked fd, seconds waited)."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    while True:
        for i, name in enumerate(names):
            # Read-only is enough for flock, so a lock file made by another user in a shared
            # --lock-dir (mode 1777) can still be locked.
            fd = os.open(lock_dir / name, os.O_RDONLY | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return i, fd, time.monotonic() - started
        time.sleep(poll)


def exec_command(command: list[str], env: dict[str, str]) -> None:
    """Replace this process with ``command`` (never returns)."""
    sys.stderr.flush()
    # Python ignores SIGPIPE and SIGXFSZ, and ignored signals stay ignored across exec.
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        print(f"{PROG}: command not found: {command[0]}", file=sys.stderr)
        sys.exit(127)
    except PermissionError:
        print(f"{PROG}: command not executable: {command[0]}", file=sys.stderr)
        sys.exit(126)


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=f"python -m evaluation.core.{PROG}",
                            description=__doc__.splitlines()[0],
                            usage="%(prog)s [--slots N] [--gpus IDS] [--lock-dir DIR] [--poll S] -- CMD ...")
    parser.add_argument("--slots", type=non_negative_int, help="number of slots; 0 runs CMD unchanged "
                        "(default $DMGD_GPU_SLOTS, else 0)")
    parser.add_argument("--gpus", help="comma-separated GPU ids (default $DMGD_GPUS, else 0..N-1)")
    parser.add_argument("--lock-dir", type=Path, help="folder of the lock files (default "
                        f"$DMGD_GPU_SLOT_DIR, else {default_lock_dir()})")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between tries when every "
                        "slot is taken (default 0.5)")
    return parser


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Options before ``--``, the command after it; settings resolved from the environment."""
    if "--" not in argv:
        build_parser().parse_args([a for a in argv if a in ("-h", "--help")])  # help, then exit
        raise UsageError("no command: put it after --, e.g. -- python workflow/scripts/distill.py ...")
    cut = argv.index("--")
    args, command = build_parser().parse_args(argv[:cut]), argv[cut + 1:]
    if not command:
        raise UsageError("no command after --")
    if args.slots is None:
        raw = os.environ.get("DMGD_GPU_SLOTS", "").strip() or "0"
        try:
            args.slots = int(raw)
        except ValueError:
            raise UsageError(f"$DMGD_GPU_SLOTS={raw!r} is not an integer") from None
    if args.slots < 0:
        raise UsageError(f"--slots {args.slots}: give 0 (off) or a positive number of slots")
    if not args.poll > 0:
        raise UsageError(f"--poll {args.poll}: give a positive number of seconds")
    if args.gpus is not None:
        args.gpus = parse_gpus(args.gpus, "--gpus")
    elif os.environ.get("DMGD_GPUS", "").strip():
        args.gpus = parse_gpus(os.environ["DMGD_GPUS"], "$DMGD_GPUS")
    else:
        args.gpus = [str(i) for i in range(args.slots)]
    if args.lock_dir is None:
        args.lock_dir = Path(os.environ.get("DMGD_GPU_SLOT_DIR") or default_lock_dir())
    return args, command


def main(argv: list[str] | None = None) -> None:
    try:
        args, command = parse(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        sys.exit(2)
    assigned = os.environ.get("CUDA_VISIBLE_DEVICES")
    if assigned is not None:
        print(f"{PROG}: CUDA_VISIBLE_DEVICES={assigned!r} is already set (a cluster scheduler or you "
              "chose the GPUs); running the command unchanged", file=sys.stderr)
        exec_command(command, dict(os.environ))
    if args.slots == 0:
        print(f"{PROG}: 0 slots; running the command unchanged (set $DMGD_GPU_SLOTS or --slots to "
              "give each GPU job its own GPU)", file=sys.stderr)
        exec_command(command, dict(os.environ))
    if shutil.which(command[0]) is None:  # fail now, not after waiting for a GPU
        print(f"{PROG}: command not found: {command[0]}", file=sys.stderr)
        sys.exit(127)
    table = slot_table(args.slots, args.gpus)
    try:
        slot, fd, waited = acquire(args.lock_dir, [name for _, name in table], args.poll)
    except OSError as err:
        print(f"{PROG}: error: cannot use lock folder {args.lock_dir}: {err.strerror}; set "
              "--lock-dir or $DMGD_GPU_SLOT_DIR to a writable folder", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    os.set_inheritable(fd, True)  # the command holds the lock until it (and its children) exit
    gpu = table[slot][0]
    print(f"{PROG}: slot {slot} of {args.slots}, CUDA_VISIBLE_DEVICES={gpu} "
          f"(lock {args.lock_dir / table[slot][1]}, waited {waited:.1f} s)", file=sys.stderr)
    exec_command(command, {**os.environ, "CUDA_VISIBLE_DEVICES": gpu})


if __name__ == "__main__":
    main()
