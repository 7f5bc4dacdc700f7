"""Model-batched evaluation's throughput: R repeats trained as one stacked model against the same R
trained one after another in the same process, optionally with the per-image DataLoader pipeline.

Every side trains ``network`` under the default profile's hard_label protocol (lighting off, as
``benchmarks/eval_loop.py``) on the digits at ``--size`` px, ``--ipc`` images per class, for
``--epochs`` epochs:

- stacked: ``train_and_evaluate_repeats(..., stack=True)`` (evaluation/protocols/stacked_training.py),
  the R models' forwards mapped over their stacked weights;
- sequential: the same call with ``stack=False``: the R repeats one after another through
  ``train_and_evaluate``, as R jobs would train them, less the process starts;
- dataloader (``--dataloader``): one model through ``eval_loop``'s per-image ``DataLoader`` pipeline
  (PNG decoding and ``torchvision.transforms`` per image), the IDC/Minimax way.

Each side is timed end to end (initial models, training, and for the suite's sides one evaluation on the
first ``--test`` test images), interleaved over ``--repeats`` rounds, best time kept. Throughput is per
model: R x epochs model-epochs over the time of the stacked or sequential side, epochs over the
DataLoader side's. The stacked results must equal the sequential ones to float tolerance
(tests/test_stacked_training.py): the largest top-1 difference over the repeats is printed.

Usage: python benchmarks/stacked_eval.py [--network convnet-3] [--size 16] [--ipc 10] [--epochs 2]
       [--models 5] [--repeats 3] [--device cpu] [--dataloader] [--workers 0] [--test 100]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run as a script from anywhere
from benchmarks import eval_loop
from benchmarks.timing import best_times
from evaluation.protocols.networks import create_network
from evaluation.data.datasets import load_split
from evaluation.protocols.stacked_training import train_and_evaluate_repeats
from evaluation.protocols.training import initial_model

MODELS = 5
NETWORKS = {"convnet-1": ("convnet", {"depth": 1, "width": 8}),   # the smallest, for code-path checks
            "convnet-3": ("convnet", {"depth": 3, "width": 128}),
            "resnet_ap-10": ("resnet_ap", {"depth": 10}),
            "resnet-18": ("resnet", {"depth": 18, "norm": "batch"})}
SEED = 0   # repeat r trains with evaluation seed SEED + r on both sides


@dataclass(frozen=True)
class Side:
    """One way of training the repeats: ``stack`` True (model-batched, the stack's ``forward``: auto,
    vmap or loop), False (one after another) or None (one model through the DataLoader pipeline), with
    protocol ``options`` on top (``autocast_bf16``, ``compile``)."""
    stack: bool | None
    options: dict = field(default_factory=dict)
    forward: str = "auto"


@dataclass
class Measurement:
    seconds: dict[str, float]
    model_epochs: dict[str, int]
    peaks: dict[str, int]
    results: dict[str, list[dict]]   # the suite's sides: one result per repeat, from the last round
    images: int                      # training images per model
    test_images: int
    batch_size: int
    stacked: dict[str, int]          # models in one stack, by side (1: one at a time)

    def epochs_per_s(self, side: str) -> float:
        return self.model_epochs[side] / self.seconds[side]

    def images_per_s(self, side: str) -> float:
        return self.model_epochs[side] * self.images / self.seconds[side]

    def flops_per_s(self, side: str, flops_per_image: float) -> float:
        """Achieved training FLOP/s of ``side`` (all its models together; ``training_flops`` per image)."""
        return flops_per_image * self.images * self.model_epochs[side] / self.seconds[side]

    def ratio(self, side: str, reference: str) -> float:
        """Per-model throughput of ``side`` over ``reference``'s."""
        return self.epochs_per_s(side) / self.epochs_per_s(reference)

    def top1_difference(self, side: str, reference: str) -> float:
        """Largest |top-1 difference| (points) between two sides over every repeat's evaluation curve."""
        return max(abs(a["top1"] - b["top1"]) for mine, theirs in zip(self.results[side], self.results[reference])
                   for a, b in zip(mine["curve"], theirs["curve"], strict=True))


def training_flops(network: str, size: int, device: str = "cpu") -> float:
    """FLOPs of one training image through ``network`` (forward and backward, 10 classes), counted by
    ``torch.utils.flop_counter.FlopCounterMode``; augmentation and evaluation passes are left out."""
    from torch.utils.flop_counter import FlopCounterMode

    arch, kwargs = NETWORKS[network]
    model = create_network(arch, 10, size, **kwargs).to(device)
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(2, 3, size, size, device=device)).sum().backward()
    return counter.get_total_flops() / 2


def measure(sides: dict[str, Side], network: str, size: int, ipc: int = 10, epochs: int = 2, repeats: int = 3,
            models: int = MODELS, device: str = "cpu", workers: int = 0, test_images: int = 100,
            warm_up: bool = False, data_dir: Path | None = None) -> Measurement:
    """Time each of ``sides`` training ``network`` (a key of NETWORKS) at ``size`` px (module docstring);
    ``warm_up`` runs every side once untimed first (``torch.compile`` compiles there); ``data_dir``
    keeps the prepared digits between calls."""
    arch, kwargs = NETWORKS[network]
    protocol = {**eval_loop.benchmark_protocol(), "num_evals": 1}
    tmp = Path(tempfile.mkdtemp())
    try:
        data = data_dir or tmp / "data"
        images, labels = eval_loop.digits_subset(data, size, ipc)
        test_x, test_y = load_split(data, "test")
        test = (test_x[:test_images], test_y[:test_images])
        loader = (eval_loop.reference_loader(images, labels, protocol, tmp / "synset", workers, device)
                  if any(side.stack is None for side in sides.values()) else None)
        seeds = [SEED + r for r in range(models)]
        results, stacked = {}, {}

        def runner(name: str, side: Side):
            if side.stack is None:
                def dataloader():
                    model = initial_model(arch, 10, size, kwargs, SEED).to(device)
                    optimizer = torch.optim.SGD(model.parameters(), lr=protocol["lr"], momentum=protocol["momentum"])
                    generator = torch.Generator().manual_seed(SEED)
                    for _ in range(epochs):
                        eval_loop.reference_epoch(model, optimizer, loader, generator, device)
                return dataloader

            def suite():
                results[name], stacked[name] = train_and_evaluate_repeats(
                    images, labels, test, protocol={**protocol, **side.options}, network=arch, network_kwargs=kwargs,
                    num_classes=10, epochs=epochs, seeds=seeds, device=device, stack=side.stack, forward=side.forward)
            return suite

        runners = {name: runner(name, side) for name, side in sides.items()}
        if warm_up:
            for run in runners.values():
                run()
        peaks: dict[str, int] = {}
        seconds = best_times(runners, repeats, device, peaks)
    finally:
        shutil.rmtree(tmp)
    model_epochs = {name: epochs if side.stack is None else models * epochs for name, side in sides.items()}
    return Measurement(seconds, model_epochs, peaks, results, len(images), len(test[1]), protocol["batch_size"],
                       stacked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=list(NETWORKS), default="convnet-3")
    parser.add_argument("--size", type=int, default=16, help="image side (the default profile: 16)")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--models", type=int, default=MODELS, help="repeats R trained together")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where every side trains")
    parser.add_argument("--dataloader", action="store_true", help="add the per-image DataLoader pipeline")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the dataloader side")
    parser.add_argument("--test", type=int, default=100, help="test images of the one evaluation")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sides = {"stacked": Side(True), "stacked-vmap": Side(True, forward="vmap"), "sequential": Side(False)}
    if args.dataloader:
        sides["dataloader"] = Side(None)
    result = measure(sides, args.network, args.size, args.ipc, args.epochs, args.repeats, args.models, args.device,
                     args.workers, args.test)
    for name in sides:
        print(f"{name:>10}: {result.images_per_s(name):8.1f} images/s, {result.epochs_per_s(name):6.2f} epochs/s per "
              f"model ({result.seconds[name]:.2f} s for {result.model_epochs[name]} model-epochs)")
    print(f"{args.models} stacked (vmap) / one after another: {result.ratio('stacked-vmap', 'sequential'):.2f}x")
    print(f"{args.models} stacked (auto) / one after another: {result.ratio('stacked', 'sequential'):.2f}x "
          f"({args.network} at {args.size} px, IPC {args.ipc}, batch {result.batch_size}, {args.device}, "
          f"{torch.get_num_threads()} threads); largest top-1 difference "
          f"{result.top1_difference('stacked', 'sequential'):.2f} points on {result.test_images} test images")


if __name__ == "__main__":
    main()
