"""Entry points of the evaluation rules: train a network on a synthetic set, or the teacher.

``python workflow/scripts/evaluate.py --spec JSON --synset DIR --data DIR [--teacher DIR] --out FILE.json ...``
    trains the spec's repeats of one evaluation network under its protocol (methods_and_protocols.md
    §3; the soft-label protocol needs the teacher), together as one stacked model
    (:mod:`.stacked_training`), and writes per repeat one record: best, last and validation-selected
    test top-1 with the evaluation curve.
``python workflow/scripts/train_teacher.py --spec JSON --data DIR --out DIR``
    makes the dataset's teacher network (``teacher.source``): trains it on the real train split, or
    restricts torchvision's ImageNet-pretrained network (the state dict at ``teacher.weights``, else
    torchvision's cache file) to the dataset's classes.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from evaluation.core.artifacts import atomic_path, manifest, save_torch, seal, verify_folder, write_json_atomic, write_manifest
from evaluation.core.checkpoint import Checkpoint, job_identity
from evaluation.core.errors import InputError, MissingWeightsError, load_matching_weights
from evaluation.core.seeding import derive_seed
from evaluation.data.datasets import dataset_info, has_split, load_split, resize_uint8
from evaluation.data.synsets import read_synset, synset_provenance
from methods.encoder.encoders import TEACHER
from .inheritance import GOLDEN_FILE
from .networks import create_network
from .protocols import protocol_epochs
from .stacked_training import stacked_forward, train_and_evaluate_repeats
from .training import train_and_evaluate

PRETRAINED_IMAGE_SIZE = 224   # torchvision's ImageNet weights: 224 px crops, torchvision's stem


def _fit(train_images, train_labels, data_dir: Path, *, protocol: dict, network: dict, num_classes: int,
         epochs: int, device: str, checkpoint: Checkpoint, teacher=None, train=train_and_evaluate, **seeds):
    """``train`` (one seed, or the repeats' ``seeds``) and evaluate on the prepared test split (and the
    val split when the dataset has one), resuming from and saving to ``checkpoint``."""
    size = protocol["image_size"] or train_images.shape[-1]
    test = load_split(data_dir, "test", image_size=size)
    val = load_split(data_dir, "val", image_size=size) if has_split(data_dir, "val") else None
    kwargs = {k: v for k, v in network.items() if k != "arch"}
    return train(train_images, train_labels, test, val=val, protocol=protocol, network=network["arch"],
                 network_kwargs=kwargs, num_classes=num_classes, epochs=epochs, device=device, teacher=teacher,
                 progress=True, checkpoint=checkpoint, **seeds)


def soft_label_teacher(teacher_dir: Path, protocol: dict, device: str):
    """The teacher as ``normalised batch -> logits`` for the soft-label loss: batches at another
    resolution than the teacher's are resized (bilinear, antialiased) to it."""
    model, record = load_teacher(teacher_dir, device)
    if list(record["mean"]) != list(protocol["mean"]) or list(record["std"]) != list(protocol["std"]):
        raise InputError(f"teacher {teacher_dir} normalises with mean {record['mean']} std {record['std']}, the "
                         f"protocol with {protocol['mean']} {protocol['std']}; use one normalisation for both")
    size = record["image_size"]

    def logits(images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                                   antialias=True)
        return model(images)
    return logits


def network_settings(spec: dict, teacher_dir: Path | None, golden_dir: Path | None = None) -> dict:
    """The spec's network, plus the teacher folder for a network on the ``teacher`` encoder and the
    golden head folder of an ``inherited_classifier``."""
    network = dict(spec["network"])
    if TEACHER in (network.get("encoder"), network.get("distill_encoder")):
        if teacher_dir is None:
            raise InputError(f"network {spec['network_name']} reads the teacher encoder and needs --teacher DIR")
        network["teacher"] = str(teacher_dir)
    if golden_dir is not None:
        network["golden"] = str(golden_dir)
    return network


def evaluate_synset(spec: dict, synset_dir: Path, data_dir: Path, outs: list[Path], device: str,
                    teacher_dir: Path | None = None, golden_dir: Path | None = None) -> list[dict]:
    """Train ``spec['network']`` on the synthetic set once per repeat of ``spec['repeats']``, each with
    the seed derived from (generation seed, repeat), and write repeat k's record to ``outs[k]``: the
    record and its manifest are those of a job of that one repeat (its spec has ``repeat``), plus
    ``trained_together`` (models in one stack, 1: one at a time, and the stack's forward) and the whole
    job's wall time."""
    if len(outs) != len(spec["repeats"]):
        raise InputError(f"--out names {len(outs)} files for the spec's {len(spec['repeats'])} repeats; give one "
                         "record path per repeat, in the spec's order")
    started = time.time()
    info = dataset_info(spec["dataset"])
    protocol = spec["protocol_params"]
    images, labels = read_synset(synset_dir, info.num_classes)
    if protocol["image_size"]:
        images = resize_uint8(images, protocol["image_size"])
    teacher = None
    if protocol["loss"] == "soft":
        if teacher_dir is None:
            raise InputError(f"protocol {spec['protocol']} (soft labels) needs --teacher DIR")
        teacher = soft_label_teacher(teacher_dir, protocol, device)
    seeds = [derive_seed(spec["seed"], repeat) for repeat in spec["repeats"]]
    inputs = [synset_dir, data_dir, teacher_dir, *([golden_dir] if golden_dir is not None else [])]
    checkpoint = Checkpoint.beside(outs[0], job_identity("evaluate", spec, inputs, device=device))
    results, stacked = _fit(images, labels, data_dir, protocol=protocol, network=network_settings(spec, teacher_dir, golden_dir),
                   num_classes=info.num_classes, epochs=protocol_epochs(protocol, spec["ipc"], info.num_classes),
                   device=device, checkpoint=checkpoint, teacher=teacher, train=train_and_evaluate_repeats,
                   seeds=seeds, stack=spec["stack_repeats"], forward=spec["stacked_forward"])
    forward = stacked_forward(spec["stacked_forward"], device) if stacked > 1 else None
    one_job = {key: value for key, value in spec.items() if key not in ("repeats", "stack_repeats", "stacked_forward")}
    records = []
    for repeat, seed, result, out in zip(spec["repeats"], seeds, results, outs):
        record = {key: spec[key] for key in ("dataset", "method", "ipc", "seed", "protocol")}
        record.update(repeat=repeat, network=spec["network_name"], **result,
                      manifest=manifest({**one_job, "repeat": repeat}, seed=seed, device=device, started=started,
                                        trained_together={"models": stacked, "forward": forward},
                                        synset=synset_provenance(synset_dir)))
        write_json_atomic(out, seal(record))
        records.append(record)
    checkpoint.remove()
    return records


def train_teacher(spec: dict, data_dir: Path, out_dir: Path, device: str) -> dict:
    """The teacher network on the real train split, under the hard_label protocol's settings with the
    teacher's epochs, batch size and learning rate."""
    started = time.time()
    info = dataset_info(spec["dataset"])
    teacher = spec["teacher"]
    protocol = {**spec["protocol_params"], "epochs": teacher["epochs"], "epoch_scale": 1.0,
                "batch_size": teacher["batch_size"], "lr": teacher["lr"], "lr_by_arch": {}}
    images, labels = load_split(data_dir, "train", image_size=protocol["image_size"])
    checkpoint = Checkpoint.beside(out_dir, job_identity("teacher", spec, [data_dir], device=device))
    result, model = _fit(images, labels, data_dir, protocol=protocol, network=teacher["network"],
                         num_classes=info.num_classes, epochs=teacher["epochs"], seed=teacher["seed"],
                         device=device, checkpoint=checkpoint)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        save_torch({"state_dict": model.state_dict(), "network": teacher["network"],
                    "num_classes": info.num_classes, "image_size": images.shape[-1],
                    "mean": protocol["mean"], "std": protocol["std"]}, tmp / "model.pt")
        write_manifest(tmp, manifest(spec, seed=teacher["seed"], device=device, started=started, **result))
    checkpoint.remove()
    return result


def train_golden_head(spec: dict, data_dir: Path, out_dir: Path, device: str, weights: str | None = None,
                      teacher_dir: Path | None = None) -> dict:
    """SFM's golden classifier (ims3_lgm_sfm.md §3.3, ``get_classifier.sh``): a linear probe on the
    frozen encoder ``spec['encoder']`` trained on the full real train split under the linear_probe
    protocol's settings with ``spec['golden_head']``'s epochs and batch size (SFM 10 and 128) and the
    classifier_inheritance protocol's image size and normalisation; its head is saved."""
    started = time.time()
    info = dataset_info(spec["dataset"])
    golden = spec["golden_head"]
    protocol = {**spec["probe_params"], "epochs": golden["epochs"], "epoch_scale": 1.0,
                "batch_size": golden["batch_size"], "image_size": spec["protocol_params"]["image_size"],
                "mean": spec["protocol_params"]["mean"], "std": spec["protocol_params"]["std"]}
    images, labels = load_split(data_dir, "train", image_size=protocol["image_size"])
    network = {"arch": "linear_probe", "encoder": spec["encoder"], "weights": weights,
               "teacher": str(teacher_dir) if teacher_dir is not None else None}
    checkpoint = Checkpoint.beside(out_dir, job_identity("golden_head", spec, [data_dir, teacher_dir], device=device))
    result, model = _fit(images, labels, data_dir, protocol=protocol, network=network, num_classes=info.num_classes,
                         epochs=golden["epochs"], seed=golden["seed"], device=device, checkpoint=checkpoint)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        save_torch({"state_dict": model.classifier.state_dict(), "encoder": spec["encoder"],
                    "feature_dim": model.classifier.in_features, "num_classes": info.num_classes},
                   tmp / GOLDEN_FILE)
        write_manifest(tmp, manifest(spec, seed=golden["seed"], device=device, started=started, **result))
    checkpoint.remove()
    return result


def torchvision_weights_file(network: dict) -> tuple[Path, str]:
    """Where torchvision keeps the ImageNet weights of ``network`` (a ``resnet``), and their URL."""
    if network["arch"] != "resnet":
        raise InputError(f"teacher.source torchvision supports arch resnet (RDED's ResNet-18), not "
                         f"{network['arch']!r}; set teacher.network to {{arch: resnet, depth: 18, norm: batch}}")
    # imported here, not at the top: importing torchvision costs every evaluation job about 1.5 s
    import torchvision

    weights = getattr(torchvision.models, f"ResNet{network.get('depth', 18)}_Weights").IMAGENET1K_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name, weights.url


def teacher_weights_file(configured: str | Path | None, network: dict) -> tuple[Path, str]:
    """The ImageNet state dict to read and its URL: ``teacher.weights`` (``configured``) when set, else
    torchvision's cache file. A missing one is one line naming the path, what to put there and the key;
    nothing is downloaded."""
    default, url = torchvision_weights_file(network)
    if configured is None:
        if not default.is_file():
            raise MissingWeightsError(f"teacher weights {default} are missing (offline); download {url} to that "
                                      f"path, point TORCH_HOME at a directory holding hub/checkpoints/"
                                      f"{default.name}, or set teacher.weights to a copy elsewhere")
        return default.absolute(), url
    path = Path(configured)
    if not path.is_file():
        raise MissingWeightsError(f"teacher weights {path} (teacher.weights) are missing; put torchvision's "
                                  f"{default.name} ({url}) there under any name, or set teacher.weights to where "
                                  "it is")
    return path.absolute(), url


def pretrained_teacher(spec: dict, data_dir: Path, out_dir: Path, device: str) -> dict:
    """RDED's teacher: torchvision's ImageNet-pretrained network, its 1000-way classifier restricted to
    the rows of the dataset's classes (their ImageNet indices), read from ``teacher.weights`` or
    torchvision's cache, never downloaded."""
    started = time.time()
    info = dataset_info(spec["dataset"])
    network = spec["teacher"]["network"]
    path, url = teacher_weights_file(spec["teacher"].get("weights"), network)
    kwargs = {k: v for k, v in network.items() if k != "arch"}
    model = create_network("resnet", 1000, PRETRAINED_IMAGE_SIZE, **kwargs)
    load_matching_weights(model, torch.load(path, map_location="cpu"), path, f"replace it with torchvision's {url}")
    rows = torch.tensor(info.backbone_labels)
    state = model.state_dict()
    state["fc.weight"], state["fc.bias"] = state["fc.weight"][rows], state["fc.bias"][rows]
    protocol = spec["protocol_params"]
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        save_torch({"state_dict": state, "network": network, "num_classes": info.num_classes,
                    "image_size": PRETRAINED_IMAGE_SIZE, "mean": protocol["mean"], "std": protocol["std"]},
                   tmp / "model.pt")
        write_manifest(tmp, manifest(spec, seed=None, device=device, started=started, weights=str(path),
                                     imagenet_rows=rows.tolist()))
    return {"weights": str(path)}


TEACHER_SOURCES = {"train": train_teacher, "torchvision": pretrained_teacher}


def load_teacher(teacher_dir: Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """The saved teacher in eval mode, and its record (network, image size, normalisation), once its
    folder matches its manifest's digests."""
    verify_folder(teacher_dir, "train_teacher")
    record = torch.load(Path(teacher_dir) / "model.pt", map_location=device)
    kwargs = {k: v for k, v in record["network"].items() if k != "arch"}
    model = create_network(record["network"]["arch"], record["num_classes"], record["image_size"], **kwargs)
    load_matching_weights(model, record["state_dict"], Path(teacher_dir) / "model.pt",
                          f"re-make the teacher for network {record['network']} (delete {teacher_dir} and re-run)")
    return model.to(device).eval(), record


def teacher_network(teacher_dir: Path, device: str = "cpu"):
    """The saved teacher as the encoder methods' stand-in takes it (methods/encoder/encoders.py)."""
    from methods.encoder.encoders import TeacherNetwork

    model, record = load_teacher(teacher_dir, device)
    return TeacherNetwork(model, record["image_size"], tuple(record["mean"]), tuple(record["std"]),
                          str((Path(teacher_dir) / "model.pt").absolute()))


def make_teacher(spec: dict, data_dir: Path, out_dir: Path, device: str) -> dict:
    """The dataset's teacher from the spec's ``teacher.source`` (trained, or torchvision's)."""
    return TEACHER_SOURCES[spec["teacher"]["source"]](spec, data_dir, out_dir, device)
