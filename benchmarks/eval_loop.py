"""Evaluation-training throughput of the suite's loop as a ratio to a per-image DataLoader pipeline.

Both train the same network on the same synthetic-sized set (digits, ``--ipc`` images per class)
with the same augmentations (RandomResizedCrop(scale 0.5-1) -> flip -> ColorJitter(0.4, 0.4, 0.4) ->
normalise -> CutMix on every batch), the same optimizer and batch size, measured in the same run:

- suite: the whole set on the device as one tensor, augmentation batched on the device
  (``evaluation.protocols.training.batch_loss`` with the hard_label protocol);
- reference: the IDC/Minimax way, a ``torch.utils.data.DataLoader`` over an ``ImageFolder`` of the
  set's PNG files (decoded every epoch) with a per-image ``torchvision.transforms`` pipeline
  (Resize + CenterCrop to the training size first, as IDC; ``--workers`` loader processes), CutMix
  on the collated batch.

Each side runs ``--epochs`` epochs after one warm-up epoch, interleaved over ``--repeats`` rounds;
the best time of each is kept. Lighting is off on both sides (torchvision has no PCA lighting).
The ratio (suite images/s over reference images/s) must be at least 3 (issue #5).

Usage: python benchmarks/eval_loop.py [--size 16] [--ipc 10] [--epochs 20] [--repeats 3] [--workers 0]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import datasets, transforms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run as a script from anywhere
from benchmarks.timing import best_times, synchronize
from evaluation.config.validate import validate_config
from evaluation.data.datasets import load_split, prepare_digits
from evaluation.protocols.augment import cutmix
from evaluation.protocols.networks import create_network
from evaluation.protocols.training import batch_loss, to_unit_float

LIMIT = 3.0
NETWORK = {"arch": "convnet", "depth": 3, "width": 128}


def write_folder(images: torch.Tensor, labels: torch.Tensor, root: Path) -> Path:
    """The set as an ImageFolder of PNGs, the layout the reference scripts read."""
    for index, (image, label) in enumerate(zip(images, labels.tolist())):
        folder = root / f"{label:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{index:04d}.png")
    return root


def reference_epoch(model, optimizer, loader, generator, device) -> None:
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        images, labels_a, labels_b, lam = cutmix(images, labels, 1.0, generator=generator)
        outputs = model(images)
        loss = lam * F.cross_entropy(outputs, labels_a) + (1 - lam) * F.cross_entropy(outputs, labels_b)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def suite_epoch(model, optimizer, data, targets, protocol, generator) -> None:
    order = torch.randperm(len(data), generator=generator)
    for first in range(0, len(data), protocol["batch_size"]):
        batch = order[first:first + protocol["batch_size"]]
        loss = batch_loss(model, data[batch], targets[batch], protocol, teacher=None, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def benchmark_protocol() -> dict:
    """The hard_label protocol of the default profile, lighting off (torchvision has no PCA lighting)."""
    protocol = validate_config({"profile": "b", "datasets": ["digits"], "ipcs": [1],
                                "methods": {"r": {"method": "random"}}})["protocols"]["hard_label"]
    return {**protocol, "lighting": 0.0}


def digits_subset(directory: Path, size: int, ipc: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``ipc`` training images of every digit, prepared at ``size`` px under ``directory``."""
    if not (directory / "train.pt").exists():
        prepare_digits(directory, size, 0.2, 0)
    images, labels = load_split(directory, "train")
    picked = torch.cat([torch.nonzero(labels == c).flatten()[:ipc] for c in range(10)])
    return images[picked], labels[picked]


def reference_loader(images: torch.Tensor, labels: torch.Tensor, protocol: dict, root: Path, workers: int = 0,
                     device: str = "cpu") -> torch.utils.data.DataLoader:
    """The reference pipeline (module docstring) over the set written as PNGs under ``root``."""
    size = images.shape[-1]
    jitter = protocol["color_jitter"]
    pipeline = transforms.Compose([
        transforms.Resize(size), transforms.CenterCrop(size),
        transforms.RandomResizedCrop(size, scale=tuple(protocol["rrc_scale"])),
        transforms.RandomHorizontalFlip(), transforms.ColorJitter(jitter, jitter, jitter),
        transforms.ToTensor(), transforms.Normalize(protocol["mean"], protocol["std"])])
    folder = datasets.ImageFolder(str(write_folder(images, labels, root)), transform=pipeline)
    return torch.utils.data.DataLoader(folder, batch_size=protocol["batch_size"], shuffle=True,
                                       num_workers=workers, pin_memory=device != "cpu",
                                       persistent_workers=workers > 0)


def compare(size: int = 16, ipc: int = 10, epochs: int = 20, repeats: int = 3, workers: int = 0,
            device: str = "cpu", network: dict | None = None) -> dict:
    """Seconds of ``epochs`` epochs of each side (best of ``repeats`` interleaved rounds) and the
    throughput ratio suite / reference, training ``network`` (default ConvNet-3) at ``size`` px."""
    network = network or NETWORK
    torch.manual_seed(0)
    protocol = benchmark_protocol()
    tmp = Path(tempfile.mkdtemp())
    try:
        images, labels = digits_subset(tmp / "data", size, ipc)
        loader = reference_loader(images, labels, protocol, tmp / "synset", workers, device)
        data, targets = to_unit_float(images, device), labels.to(device)
        kwargs = {k: v for k, v in network.items() if k != "arch"}

        def fresh():
            model = create_network(network["arch"], 10, size, **kwargs).to(device)
            return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        epoch_of = {
            "suite": lambda model, opt, gen: suite_epoch(model, opt, data, targets, protocol, gen),
            "reference": lambda model, opt, gen: reference_epoch(model, opt, loader, gen, device),
        }

        def runner(name):
            model, optimizer = fresh()
            generator = torch.Generator().manual_seed(0)
            epoch_of[name](model, optimizer, generator)   # warm-up, outside the timing
            synchronize(device)
            return lambda: [epoch_of[name](model, optimizer, generator) for _ in range(epochs)]

        best = {name: float("inf") for name in epoch_of}
        for _ in range(repeats):   # interleaved; a fresh model per round, built and warmed up untimed
            for name in epoch_of:
                best[name] = min(best[name], best_times({name: runner(name)}, 1, device)[name])
    finally:
        shutil.rmtree(tmp)
    return {"suite_s": best["suite"], "reference_s": best["reference"], "images": len(images) * epochs,
            "epochs": epochs, "ratio": best["reference"] / best["suite"], "batch_size": protocol["batch_size"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16, help="image side (the default profile: 16)")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the reference")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where both train")
    args = parser.parse_args()
    result = compare(args.size, args.ipc, args.epochs, args.repeats, args.workers, args.device)
    for name in ("suite", "reference"):
        seconds = result[f"{name}_s"]
        print(f"{name:>9}: {result['images'] / seconds:8.1f} images/s ({seconds:.2f} s for {args.epochs} epochs "
              f"of {result['images'] // args.epochs})")
    print(f"suite / per-image DataLoader throughput: {result['ratio']:.2f}x (goal >= {LIMIT}x; {args.size} px, "
          f"convnet-3, batch {result['batch_size']}, {args.workers} loader workers, {args.device}, "
          f"{torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
