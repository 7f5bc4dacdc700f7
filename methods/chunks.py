"""Class chunks: a distillation split into contiguous ranges of dataset labels (issue #6).

ImageNet-1K at IPC 50 with DiT-XL/2 is too long for one job (DMGD's own scripts run it as four
parts of 250 classes), so a set can be distilled one chunk at a time
(``python workflow/scripts/distill.py ... --classes 250:500``) and the chunks joined by
``python workflow/scripts/merge_chunks.py``. Every method uses the global label of a class in every seed
derivation and per-class lookup, so a chunk holds exactly the images of those classes in the
unchunked set: bit-identical when the sampler batches of the two runs hold the same samples
(``sampler.batch_size`` divides the chunk size and the number of classes), otherwise equal to
float tolerance (``Generation``).

This module imports nothing heavy: the Snakefile uses :func:`class_chunks` to enumerate the chunk
jobs (config ``distill_chunk_classes``).
"""
from __future__ import annotations

from evaluation.core.errors import InputError


def class_chunks(num_classes: int, chunk_size: int | None) -> list[tuple[int, int]]:
    """Half-open label ranges of ``chunk_size`` classes covering ``range(num_classes)`` in order,
    the last one shorter: ``class_chunks(1000, 250) == [(0, 250), (250, 500), (500, 750), (750, 1000)]``.
    ``chunk_size=None`` (no chunking) gives one range of all classes."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"number of classes {num_classes!r} must be a positive integer")
    if chunk_size is None:
        return [(0, num_classes)]
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk size {chunk_size!r} must be a positive integer number of classes "
                         f"(or null for no chunking); set distill_chunk_classes to e.g. 250")
    return [(start, min(start + chunk_size, num_classes)) for start in range(0, num_classes, chunk_size)]


def check_classes(classes: range, num_classes: int) -> range:
    """``classes`` itself if it is a non-empty contiguous range inside ``range(num_classes)``."""
    if not isinstance(classes, range) or classes.step != 1:
        raise InputError(f"classes {classes!r} must be a contiguous range of dataset labels (START:STOP)")
    if len(classes) == 0 or classes.start < 0 or classes.stop > num_classes:
        raise InputError(f"classes {format_classes(classes)} must be a non-empty range inside 0:{num_classes} "
                         f"(half-open START:STOP of dataset labels, 0 <= START < STOP <= {num_classes})")
    return classes


def parse_classes(text: str | None, num_classes: int) -> range:
    """``"START:STOP"`` (half-open, dataset labels) as a range; None or ``""`` means every class."""
    if text is None or text == "":
        return range(num_classes)
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError
        classes = range(int(start), int(stop))
    except ValueError:
        raise InputError(f"--classes {text!r} is not START:STOP; give a half-open range of dataset labels, "
                         f"e.g. 0:{min(250, num_classes)}") from None
    return check_classes(classes, num_classes)


def format_classes(classes: range | tuple[int, int]) -> str:
    """The ``START:STOP`` form of a range (the ``--classes`` argument)."""
    start, stop = (classes.start, classes.stop) if isinstance(classes, range) else classes
    return f"{start}:{stop}"
