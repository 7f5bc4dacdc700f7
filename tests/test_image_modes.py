"""Images of every mode become 8-bit RGB at the right scale (issue #15, item 6).

``evaluation.data.datasets.to_rgb8`` is the one conversion (``load_rgb`` the one reader) behind ImageNet
splits, external sets, synthetic sets and figures. Each mode is checked by the mean of the result
against the 8-bit value its pixels stand for; files of the awkward kinds (a 16-bit PNG, a palette PNG
with transparency, a CMYK JPEG, a 1-bit PNG, a decompression bomb) go through the readers themselves.
"""
from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation.data.datasets import (MAX_IMAGE_PIXELS, DatasetError, dataset_info, load_rgb, load_split,
                                 prepare_imagenet, read_index, to_rgb8)
from methods.external import ExternalParams
from methods.registry import DistillContext, get_method
from tests.fake_imagenet import make_fake_imagenet

SIDE = 20
COLOUR = (10, 20, 60)        # mean 30


def palette(transparent: bool = False) -> Image.Image:
    """A palette image of COLOUR (entry 0), the entry marked transparent when ``transparent``."""
    img = Image.new("P", (SIDE, SIDE), 0)
    img.putpalette(list(COLOUR) + [255, 255, 255] * 255)
    if transparent:
        img.info["transparency"] = 0
    return img


def grey16(mode: str, value: int) -> Image.Image:
    """A 16-bit grey image of ``value`` in ``mode`` (byte order as the mode says)."""
    dtype = ">u2" if mode == "I;16B" else "<u2"
    return Image.frombytes(mode, (SIDE, SIDE), np.full((SIDE, SIDE), value, dtype).tobytes())


def png16(array: np.ndarray) -> bytes:
    """A 16-bit RGB PNG of an HxWx3 array (Pillow writes none, and opens them as 8-bit RGB)."""
    height, width = array.shape[:2]
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in array)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


MODES = {   # name: (image, the 8-bit mean it stands for)
    "1": (lambda: Image.new("1", (SIDE, SIDE), 1), 255),
    "L": (lambda: Image.new("L", (SIDE, SIDE), 100), 100),
    "LA": (lambda: Image.new("LA", (SIDE, SIDE), (100, 0)), 100),               # alpha dropped, colour kept
    "P": (palette, 30),
    "P with transparency": (lambda: palette(transparent=True), 30),
    "PA": (lambda: palette().convert("PA"), 30),
    "RGB": (lambda: Image.new("RGB", (SIDE, SIDE), COLOUR), 30),
    "RGBA": (lambda: Image.new("RGBA", (SIDE, SIDE), (*COLOUR, 0)), 30),
    "CMYK": (lambda: Image.new("CMYK", (SIDE, SIDE), (255, 0, 0, 0)), 170),    # cyan: (0, 255, 255)
    "YCbCr": (lambda: Image.new("YCbCr", (SIDE, SIDE), (100, 128, 128)), 100),  # grey
    "I;16": (lambda: grey16("I;16", 32768), 128),
    "I;16B": (lambda: grey16("I;16B", 32768), 128),
    "I;16L": (lambda: grey16("I;16L", 32768), 128),
    "I;16N": (lambda: grey16("I;16N", 32768), 128),
    "I": (lambda: Image.fromarray(np.full((SIDE, SIDE), 32768, np.int32)), 128),
    "F": (lambda: Image.fromarray(np.full((SIDE, SIDE), 0.5, np.float32)), 128),
}


@pytest.mark.parametrize("name", MODES)
def test_every_mode_becomes_8bit_rgb_at_its_scale(name):
    build, expected = MODES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = np.asarray(to_rgb8(build(), name))
    assert rgb.dtype == np.uint8 and rgb.shape == (SIDE, SIDE, 3)
    assert rgb.mean() == pytest.approx(expected, abs=1)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
@pytest.mark.parametrize("value, expected", [(0, 0), (257, 1), (32768, 128), (65535, 255)])
def test_16bit_values_scale_over_the_full_range(mode, value, expected):
    img = grey16(mode, value) if mode != "I" else Image.fromarray(np.full((SIDE, SIDE), value, np.int32))
    assert np.asarray(to_rgb8(img, mode)).max() == expected


@pytest.mark.parametrize("img", [Image.fromarray(np.full((4, 4), 70000, np.int32)),
                                 Image.fromarray(np.full((4, 4), -1, np.int32)),
                                 Image.fromarray(np.full((4, 4), 1.5, np.float32)),
                                 Image.fromarray(np.full((4, 4), np.nan, np.float32))],
                         ids=["I above 65535", "I negative", "F above 1", "F nan"])
def test_values_outside_the_modes_range_are_refused(img):
    with pytest.raises(DatasetError, match=rf"^image x\.tif: mode {img.mode} values outside 0\.\.\S+, of unknown "
                                           r"scale; save it as an 8- or 16-bit PNG$"):
        to_rgb8(img, "x.tif")


def write_files(folder: Path) -> dict[str, float]:
    """One file of each awkward kind in ``folder``: name -> the 8-bit mean it stands for."""
    folder.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 65535, SIDE * SIDE).reshape(SIDE, SIDE).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "grey16.png")                       # opened as I;16, mean 32767.5
    (folder / "rgb16.png").write_bytes(png16(np.full((SIDE, SIDE, 3), 32768)))
    palette(transparent=True).save(folder / "palette.png")                  # a tRNS chunk
    Image.new("1", (SIDE, SIDE), 1).save(folder / "bilevel.png")
    Image.new("LA", (SIDE, SIDE), (100, 0)).save(folder / "grey_alpha.png")
    Image.new("CMYK", (SIDE, SIDE), (255, 0, 0, 0)).save(folder / "cmyk.jpg", quality=95)
    return {"grey16.png": 127.5, "rgb16.png": 128, "palette.png": 30, "bilevel.png": 255, "grey_alpha.png": 100,
            "cmyk.jpg": 170}


def test_files_of_every_kind_read_at_their_scale(tmp_path):
    expected = write_files(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        means = {name: np.asarray(load_rgb(tmp_path / name)).mean() for name in expected}
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"
    assert means == pytest.approx(expected, abs=2)


def test_a_decompression_bomb_is_refused_in_one_line_naming_the_file_and_the_limit(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (10_000, 9_000)).save(path)       # 9e7 pixels > MAX_IMAGE_PIXELS, a few KB on disk
    assert path.stat().st_size < 100_000 and 10_000 * 9_000 > MAX_IMAGE_PIXELS
    with pytest.raises(DatasetError, match=rf"^image {path} has more than 89,478,485 pixels \(MAX_IMAGE_PIXELS of "
                                           r"evaluation/data/datasets\.py, the decompression-bomb guard\); downscale it "
                                           r"or remove it$"):
        load_rgb(path)


def test_external_set_of_mixed_modes_is_read_at_their_scale(tmp_path):
    """The issue's example: a 16-bit PNG in an external set was saturated (mean 254 instead of ~127)."""
    expected = write_files(tmp_path / "files")
    names = sorted(expected)
    root = tmp_path / "external"
    for label in range(10):
        (root / str(label)).mkdir(parents=True)
        name = names[label % len(names)]
        (root / str(label) / f"a{Path(name).suffix}").write_bytes((tmp_path / "files" / name).read_bytes())
    ctx = DistillContext(dataset=dataset_info("digits"), data_dir=tmp_path, ipc=1, seed=0,
                         params=ExternalParams(str(root)), data={"digits_image_size": 16})
    synset = get_method("external").distill(ctx)
    means = synset.images.float().mean(dim=(1, 2, 3)).tolist()
    assert means == pytest.approx([expected[names[label % len(names)]] for label in range(10)], abs=2)


def test_imagenet_split_with_cmyk_16bit_and_palette_images_reads_them_at_their_scale(tmp_path):
    files = write_files(tmp_path / "files")
    root = make_fake_imagenet(tmp_path / "root", ["imagenet_woof"], train_per_class=2, val_per_class=1, size=16)
    info = dataset_info("imagenet_woof")
    prepare_imagenet(tmp_path / "data", root, info, val_per_class=0, split_seed=0)
    paths, labels = read_index(tmp_path / "data", "train")
    first = {int(label): index for index, label in reversed(list(enumerate(labels.tolist())))}
    replaced = {"cmyk.jpg": 0, "grey16.png": 1, "palette.png": 2}   # named .JPEG, as ImageNet's files
    for name, label in replaced.items():
        Path(paths[first[label]]).write_bytes((tmp_path / "files" / name).read_bytes())
    images, _ = load_split(tmp_path / "data", "train", image_size=16,
                           indices=[first[label] for label in replaced.values()])
    assert images.float().mean(dim=(1, 2, 3)).tolist() == pytest.approx([files[name] for name in replaced], abs=2)
    assert images.dtype == torch.uint8
