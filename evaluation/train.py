"""Entry points of the evaluation rules: train a network on a synthetic set, or the teacher.

``python -m evaluation.train synset --spec JSON --synset DIR --data DIR --out FILE.json``
    trains one evaluation network (one repeat) under the hard-label protocol of IDC/Minimax
    (methods_and_protocols.md §3) and writes best and last top-1 on the test split.
``python -m evaluation.train teacher --spec JSON --data DIR --out DIR``
    trains the teacher/feature network on the full real train split and saves it.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from .artifacts import atomic_path, manifest, resolve_device, write_json_atomic
from .datasets import dataset_info, load_split, resize_uint8
from .networks import create_network
from .protocols import hard_label_epochs, milestones
from .seeding import derive_seed
from .synsets import read_synset
from .training import train_and_evaluate


def protocol_epochs(protocol: dict, ipc: int, num_classes: int) -> int:
    """Reference epochs for the IPC (``ipc_epoch``), times the profile's ``epoch_scale``."""
    return max(1, round(hard_label_epochs(ipc, num_classes) * protocol["epoch_scale"]))


def _fit(train_images, train_labels, test_images, test_labels, *, protocol: dict, network: dict,
         num_classes: int, epochs: int, batch_size: int, lr: float, seed: int, device: str):
    kwargs = {k: v for k, v in network.items() if k != "arch"}
    return train_and_evaluate(
        train_images, train_labels, test_images, test_labels, network=network["arch"],
        network_kwargs=kwargs, num_classes=num_classes, epochs=epochs, batch_size=batch_size, lr=lr,
        momentum=protocol["momentum"], weight_decay=protocol["weight_decay"],
        optimizer=protocol["optimizer"], milestones=milestones(epochs), gamma=protocol["gamma"],
        rrc_scale=tuple(protocol["rrc_scale"]), cutmix_alpha=protocol["cutmix_alpha"],
        cutmix_prob=protocol["cutmix_prob"], num_evals=min(protocol["num_evals"], epochs),
        mean=protocol["mean"], std=protocol["std"], seed=seed, device=device, progress=True)


def _test_split(data_dir: Path, image_size: int | None, like: torch.Tensor):
    size = image_size or like.shape[-1]
    return load_split(data_dir, "test", image_size=size)


def evaluate_synset(spec: dict, synset_dir: Path, data_dir: Path, out: Path, device: str) -> dict:
    """Train ``spec['network']`` on the synthetic set; seed derived from (generation seed, repeat)."""
    started = time.time()
    info = dataset_info(spec["dataset"])
    protocol = spec["protocol_params"]
    images, labels = read_synset(synset_dir, info.num_classes)
    if protocol["image_size"]:
        images = resize_uint8(images, protocol["image_size"])
    test_images, test_labels = _test_split(data_dir, protocol["image_size"], images)
    epochs = protocol_epochs(protocol, spec["ipc"], info.num_classes)
    seed = derive_seed(spec["seed"], spec["repeat"])
    result, _ = _fit(images, labels, test_images, test_labels, protocol=protocol, network=spec["network"],
                     num_classes=info.num_classes, epochs=epochs, batch_size=protocol["batch_size"],
                     lr=protocol["lr"], seed=seed, device=device)
    record = {key: spec[key] for key in ("dataset", "method", "ipc", "seed", "protocol", "repeat")}
    record.update(network=spec["network_name"], **result,
                  manifest=manifest(spec, seed=seed, device=device, started=started))
    write_json_atomic(out, record)
    return record


def train_teacher(spec: dict, data_dir: Path, out_dir: Path, device: str) -> dict:
    """The teacher/feature network on the full real train split (later: metrics, soft labels)."""
    started = time.time()
    info = dataset_info(spec["dataset"])
    protocol, teacher = spec["protocol_params"], spec["teacher"]
    images, labels = load_split(data_dir, "train", image_size=protocol["image_size"])
    test_images, test_labels = _test_split(data_dir, protocol["image_size"], images)
    result, model = _fit(images, labels, test_images, test_labels, protocol=protocol,
                         network=teacher["network"], num_classes=info.num_classes,
                         epochs=teacher["epochs"], batch_size=teacher["batch_size"], lr=teacher["lr"],
                         seed=teacher["seed"], device=device)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        torch.save({"state_dict": model.state_dict(), "network": teacher["network"],
                    "num_classes": info.num_classes, "image_size": images.shape[-1],
                    "mean": protocol["mean"], "std": protocol["std"]}, tmp / "model.pt")
        write_json_atomic(tmp / "manifest.json", manifest(spec, seed=teacher["seed"], device=device,
                                                          started=started, **result))
    return result


def load_teacher(teacher_dir: Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """The saved teacher in eval mode, and its record (network, image size, normalisation)."""
    record = torch.load(Path(teacher_dir) / "model.pt", map_location=device)
    kwargs = {k: v for k, v in record["network"].items() if k != "arch"}
    model = create_network(record["network"]["arch"], record["num_classes"], record["image_size"], **kwargs)
    model.load_state_dict(record["state_dict"])
    return model.to(device).eval(), record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["synset", "teacher"])
    parser.add_argument("--spec", required=True, help="JSON config slice of the job")
    parser.add_argument("--data", required=True, type=Path, help="prepared dataset directory")
    parser.add_argument("--synset", type=Path, help="synthetic set directory (mode synset)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec, device = json.loads(args.spec), resolve_device(args.device)
    if args.mode == "synset":
        evaluate_synset(spec, args.synset, args.data, args.out, device)
    else:
        train_teacher(spec, args.data, args.out, device)


if __name__ == "__main__":
    main()
