"""Few-shot class pools read offline from a data root: Omniglot, CIFAR-FS, mini-ImageNet, digits.

A pool is one split of one dataset: a tuple of classes, each a float32 tensor (n_c, C, H, W) in
[0, 1]. Splits are disjoint in classes: the standard few-shot splits of Omniglot, CIFAR-FS and
mini-ImageNet, and for digits (digit, rotation) classes split by digit (0–5 train, 6–7 validation,
8–9 test), so every split's classes are novel to the others. Nothing is downloaded; a missing or
corrupt file raises DatasetError saying what was expected where and how to obtain it.

The CIFAR-100 and mini-ImageNet files are pickles, and unpickling runs code: point ``data_root``
only at files from a trusted source.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from theory.ground.atomic_io import atomic_write_bytes
from theory.ground.errors import DatasetError, ParameterError

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True, eq=False, repr=False)
class ClassPool:
    """One split of a dataset: ``images[i]`` (n_i, C, H, W) float32 in [0, 1] holds class ``classes[i]``."""

    name: str  # e.g. "omniglot/train"
    classes: tuple[str, ...]  # identifiers, unique within the dataset
    images: tuple[torch.Tensor, ...]  # per class (n_c, C, H, W)

    def __post_init__(self):
        if len(self.classes) != len(self.images) or not self.images:
            raise ValueError(f"{self.name}: {len(self.classes)} class names for {len(self.images)} image tensors")
        shapes = {tuple(t.shape[1:]) for t in self.images}
        if len(shapes) != 1 or any(t.ndim != 4 or t.dtype != torch.float32 or not len(t) for t in self.images):
            raise ValueError(f"{self.name}: each class needs a non-empty float32 (n, C, H, W) tensor of "
                             f"one common image shape; got shapes {sorted(shapes)}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(self.images[0].shape[1:])

    def __repr__(self) -> str:
        n = sum(len(t) for t in self.images)
        return f"ClassPool({self.name!r}, {len(self.classes)} classes, {n} images of shape {self.image_shape})"


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's loader and, one line each, the files it expects and how to obtain them."""

    load: Callable[[Path | None, str], ClassPool]  # (data root, split) -> pool
    files: str  # expected files, relative to <root>
    obtain: str  # where they come from
    needs_root: bool = True


def load_pool(dataset: str, split: str, data_root: str | None = None) -> ClassPool:
    """The ``split`` pool ("train", "validation", "test") of ``dataset`` (a key of DATASETS)."""
    if dataset not in DATASETS:
        raise ParameterError("dataset", dataset, f"one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ParameterError("split", split, f"one of {', '.join(SPLITS)}")
    return DATASETS[dataset].load(check_root(dataset, data_root), split)


def check_root(dataset: str, data_root: str | None) -> Path | None:
    """``data_root`` as a Path (None where ``dataset`` reads no files); DatasetError if the dataset needs a data
    root and none is given, or the given one is not a folder. Reads nothing: the files are checked as they load."""
    if not DATASETS[dataset].needs_root:
        return None
    if data_root is None:
        raise _error(dataset, None, f"no data root given ({dataset} is read from files)")
    root = Path(data_root).expanduser()
    if not root.is_dir():
        what = "it is a file" if root.exists() else "it does not exist"
        raise _error(dataset, root, f"data root is not a folder ({what})", root)
    return root


def _error(dataset: str, root: Path | None, problem: str, where=None) -> DatasetError:
    """DatasetError: '<dataset>: <problem>: <where>; expected <files>; to obtain it, <how>', one line."""
    spec = DATASETS[dataset]
    files, obtain = (text.replace("<root>", str(root) if root is not None else "<root>")
                     for text in (spec.files, spec.obtain))
    problem = " ".join(str(problem).split())  # one line, whatever the parser said
    at = "" if where is None else f": {where}"
    return DatasetError(f"{dataset}: {problem}{at}; expected {files}; to obtain it, {obtain}")


def _unpickle(dataset: str, root: Path, path: Path, encoding: str):
    if not path.is_file():
        raise _error(dataset, root, "missing file", path)
    try:
        with path.open("rb") as handle:
            return pickle.load(handle, encoding=encoding)
    except Exception as exc:  # a truncated or foreign file can fail in any unpickler step
        raise _error(dataset, root, f"cannot unpickle ({type(exc).__name__}: {exc})", path) from exc


# ---------------------------------------------------------------- Omniglot
_OMNIGLOT_SETS = ("images_background", "images_evaluation")
_OMNIGLOT_SPLIT = {"train": 1100, "validation": 100, "test": 423}  # characters, in sorted order
_OMNIGLOT_PIXELS = 28
_ROTATIONS = (0, 90, 180, 270)  # degrees counter-clockwise; each is its own class
_CACHE_VERSION = "omniglot-v1: 28x28 LANCZOS of L mode, stored as 255 - pixel"


def _load_omniglot(root: Path, split: str) -> ClassPool:
    """Omniglot characters as 28×28 stroke maps (1 − pixel: strokes 1, paper 0), four rotations each.

    All characters are sorted (images_background before images_evaluation, then alphabet, then
    character folder, by Python string order); the first 1100 are train, the next 100
    validation, the last 423 test (Vinyals et al. 2016 use 1200 train and 423 test; the 1200
    are split 1100/100 here). Each character's rotations by 0°, 90°, 180°, 270° are four classes
    of that character's split, so the splits share no character in any rotation.
    """
    characters = _omniglot_characters(root)
    sizes = _OMNIGLOT_SPLIT
    if len(characters) != sum(sizes.values()):
        raise _error("omniglot", root, f"found {len(characters)} character folders, not the "
                     f"{sum(sizes.values())} of Omniglot", root / "omniglot")
    arrays = _omniglot_arrays(root, characters)
    start = {"train": 0, "validation": sizes["train"], "test": sizes["train"] + sizes["validation"]}[split]
    classes, images = [], []
    for (name, _), pixels in list(zip(characters, arrays))[start:start + sizes[split]]:
        x = torch.from_numpy(pixels).unsqueeze(1).float().div_(255)  # (n, 1, 28, 28)
        for degrees in _ROTATIONS:
            classes.append(f"{name}/rot{degrees}")
            images.append(torch.rot90(x, degrees // 90, dims=(2, 3)).contiguous())
    return ClassPool(f"omniglot/{split}", tuple(classes), tuple(images))


def _omniglot_characters(root: Path) -> list[tuple[str, list[Path]]]:
    """("alphabet/character", sorted PNG paths) for every character folder, in split order."""
    characters = []
    for part in _OMNIGLOT_SETS:
        folder = root / "omniglot" / part
        if not folder.is_dir():
            raise _error("omniglot", root, "missing folder", folder)
        for alphabet in _subfolders(folder):
            for character in _subfolders(alphabet):
                pngs = sorted(character.glob("*.png"), key=lambda p: p.name)
                if not pngs:
                    raise _error("omniglot", root, "no .png drawings in character folder", character)
                characters.append((f"{alphabet.name}/{character.name}", pngs))
    names = [name for name, _ in characters]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})[:3]
        raise _error("omniglot", root, f"alphabet/character names occur twice ({', '.join(twice)})",
                     root / "omniglot")
    return characters


def _subfolders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _omniglot_arrays(root: Path, characters) -> list[np.ndarray]:
    """Per character (n, 28, 28) uint8 of 255 − pixel, from the cache if it matches the files."""
    cache = root / "omniglot" / f"cache_{_OMNIGLOT_PIXELS}x{_OMNIGLOT_PIXELS}.npz"
    digest = hashlib.sha256(_CACHE_VERSION.encode())
    for _, pngs in characters:  # file names and sizes: a cheap fingerprint of the decoded content
        for p in pngs:
            digest.update(f"{p.relative_to(root)}\t{p.stat().st_size}\n".encode())
    fingerprint = digest.hexdigest()
    counts = [len(pngs) for _, pngs in characters]
    cached = _read_cache(cache, fingerprint, counts)
    if cached is not None:
        return cached
    arrays = [np.stack([_decode_png(root, p) for p in pngs]) for _, pngs in characters]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=np.concatenate(arrays), counts=np.asarray(counts),
                        fingerprint=np.asarray(fingerprint))
    try:
        atomic_write_bytes(cache, buffer.getvalue())
    except OSError as exc:
        warnings.warn(f"could not write the Omniglot cache {cache} ({exc}); the PNGs will be decoded "
                      "again next time", stacklevel=4)
    return arrays


def _read_cache(cache: Path, fingerprint: str, counts: list[int]) -> list[np.ndarray] | None:
    """The cached arrays, or None if absent, unreadable or made from other files (then rebuilt)."""
    try:
        with np.load(cache, allow_pickle=False) as z:
            if str(z["fingerprint"]) != fingerprint or z["counts"].tolist() != counts:
                return None
            images = z["images"]
    except Exception:  # absent, truncated or foreign: the cache is ours to rebuild
        return None
    if images.dtype != np.uint8 or images.shape != (sum(counts), _OMNIGLOT_PIXELS, _OMNIGLOT_PIXELS):
        return None
    return np.split(images, np.cumsum(counts)[:-1])


def _decode_png(root: Path, path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            small = img.convert("L").resize((_OMNIGLOT_PIXELS,) * 2, Image.Resampling.LANCZOS)
    except Exception as exc:  # Pillow raises OSError, SyntaxError or ValueError on broken files
        raise _error("omniglot", root, f"unreadable PNG ({type(exc).__name__}: {exc})", path) from exc
    return 255 - np.asarray(small, dtype=np.uint8)  # (28, 28): strokes high


# ---------------------------------------------------------------- CIFAR-FS
_CIFARFS_HELD_OUT = {  # Bertinetto et al. 2019; train is the other 64 fine labels
    "test": ("whale", "poppy", "rose", "sweet_pepper", "telephone", "bed", "table", "wardrobe",
             "leopard", "plain", "chimpanzee", "fox", "snail", "worm", "baby", "man", "woman",
             "bicycle", "pickup_truck", "rocket"),
    "validation": ("beaver", "otter", "flatfish", "shark", "lamp", "television", "beetle", "butterfly",
                   "sea", "camel", "cattle", "crab", "crocodile", "maple_tree", "motorcycle", "tractor"),
}


def _load_cifarfs(root: Path, split: str) -> ClassPool:
    """CIFAR-FS: CIFAR-100 train and test merged (600 images of 3×32×32 per class), 64/16/20 classes."""
    folder = root / "cifar-100-python"
    meta = _cifar_dict(root, folder / "meta", "fine_label_names")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta["fine_label_names"]]
    held_out = {n for group in _CIFARFS_HELD_OUT.values() for n in group}
    lacking = [n for n in sorted(held_out) if n not in names]
    if lacking or len(names) != 100 or len(set(names)) != 100:
        raise _error("cifarfs", root, f"fine_label_names are not the 100 CIFAR-100 names "
                     f"({len(set(names))} distinct; lacking {', '.join(lacking) or 'none'})", folder / "meta")
    wanted = [i for i, n in enumerate(names)
              if (n in _CIFARFS_HELD_OUT[split] if split != "train" else n not in held_out)]
    data, labels = [], []
    for part in ("train", "test"):
        d = _cifar_dict(root, folder / part, "data", "fine_labels")
        x, y = d["data"], np.asarray(d["fine_labels"])
        if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 2 and x.shape[1] == 3072
                and y.shape == (len(x),) and y.dtype.kind in "iu" and (len(y) == 0 or 0 <= y.min() <= y.max() < 100)):
            raise _error("cifarfs", root, "b'data' is not an (N, 3072) uint8 array with N fine_labels "
                         "in 0..99", folder / part)
        data.append(x)
        labels.append(y)
    data, labels = np.concatenate(data), np.concatenate(labels)
    images = []
    for c in wanted:
        rows = data[labels == c]  # (n_c, 3072): 1024 red, 1024 green, 1024 blue, each row-major
        if not len(rows):
            raise _error("cifarfs", root, f"no images of class {names[c]!r} in train or test", folder)
        images.append(torch.from_numpy(rows.reshape(-1, 3, 32, 32)).float().div_(255))
    return ClassPool(f"cifarfs/{split}", tuple(names[c] for c in wanted), tuple(images))


def _cifar_dict(root: Path, path: Path, *keys: str) -> dict:
    obj = _unpickle("cifarfs", root, path, "bytes")
    if not isinstance(obj, dict):
        raise _error("cifarfs", root, f"holds a {type(obj).__name__}, not a dict", path)
    obj = {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}
    missing = [k for k in keys if k not in obj]
    if missing:
        raise _error("cifarfs", root, f"lacks key(s) {', '.join(missing)}", path)
    return obj


# ---------------------------------------------------------------- mini-ImageNet
_MINI_FILES = {"train": "train", "validation": "val", "test": "test"}
_MINI_CLASSES = {"train": 64, "validation": 16, "test": 20}


def _load_mini_imagenet(root: Path, split: str) -> ClassPool:
    """mini-ImageNet (Ravi & Larochelle 2017 split): 3×84×84 images, 64/16/20 classes of 600."""
    path = root / "mini-imagenet" / f"mini-imagenet-cache-{_MINI_FILES[split]}.pkl"
    obj = _unpickle("mini-imagenet", root, path, "latin1")
    data = obj.get("image_data") if isinstance(obj, dict) else None
    class_dict = obj.get("class_dict") if isinstance(obj, dict) else None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.shape[1:] == (84, 84, 3)):
        raise _error("mini-imagenet", root, "'image_data' is not an (N, 84, 84, 3) uint8 array", path)
    if not isinstance(class_dict, dict) or len(class_dict) != _MINI_CLASSES[split]:
        found = len(class_dict) if isinstance(class_dict, dict) else "no"
        raise _error("mini-imagenet", root, f"'class_dict' has {found} classes, not the "
                     f"{_MINI_CLASSES[split]} of the {split} split", path)
    classes, images = [], []
    for name in sorted(class_dict):
        idx = np.asarray(class_dict[name])
        if idx.ndim != 1 or not len(idx) or idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= len(data):
            raise _error("mini-imagenet", root, f"class {name!r} lists no valid image indices", path)
        classes.append(str(name))
        images.append(torch.from_numpy(data[idx]).permute(0, 3, 1, 2).contiguous().float().div_(255))
    return ClassPool(f"mini-imagenet/{split}", tuple(classes), tuple(images))


# ---------------------------------------------------------------- digits
_DIGITS_SPLIT = {"train": (0, 1, 2, 3, 4, 5), "validation": (6, 7), "test": (8, 9)}  # by digit: novel classes


def _load_digits(root: Path | None, split: str) -> ClassPool:
    """scikit-learn's 1797 8×8 digits (values 0..16 scaled to [0, 1]) as 40 novel-split classes.

    A class is a (digit, rotation) pair, rotation 0°, 90°, 180° or 270° counter-clockwise
    (``torch.rot90``, exact): class "d/rotR" holds every image of digit d rotated by R, in the
    dataset's order (174 to 183 images). The split is by digit, and a rotation stays with its
    digit (as Omniglot's characters): digits 0–5 train (24 classes), 6–7 validation (8), 8–9 test
    (8), so meta-test classes never appear in meta-training, in any rotation. Novel means unseen,
    not unlike: 8 is nearly symmetric under 180° (mean images of 8/rot0 and 8/rot180 are 0.72
    apart in L2, the median pair of classes 2.8), so those two test classes are hard to tell
    apart, and 6/rot180 (validation) resembles 9/rot0 (test).
    """
    try:
        from sklearn.datasets import load_digits  # bundled with scikit-learn: no download
    except ImportError as exc:
        raise _error("digits", root, "scikit-learn is not installed", exc) from exc
    bunch = load_digits()
    x = torch.from_numpy(bunch.images).float().div_(16).unsqueeze(1)  # (1797, 1, 8, 8)
    target = torch.from_numpy(bunch.target)  # (1797,) digit of each image
    classes, images = [], []
    for digit in _DIGITS_SPLIT[split]:
        upright = x[target == digit]  # (n_d, 1, 8, 8)
        for degrees in _ROTATIONS:
            classes.append(f"{digit}/rot{degrees}")
            images.append(torch.rot90(upright, degrees // 90, dims=(2, 3)).contiguous())
    return ClassPool(f"digits/{split}", tuple(classes), tuple(images))


DATASETS: dict[str, DatasetSpec] = {
    "omniglot": DatasetSpec(
        _load_omniglot,
        "<root>/omniglot/images_background/<alphabet>/<character>/*.png and "
        "<root>/omniglot/images_evaluation/<alphabet>/<character>/*.png (1623 characters, 20 PNG "
        "drawings of 105x105 each)",
        "unzip images_background.zip and images_evaluation.zip from "
        "https://github.com/brendenlake/omniglot (folder python/) into <root>/omniglot/"),
    "cifarfs": DatasetSpec(
        _load_cifarfs,
        "<root>/cifar-100-python/{train,test,meta}, the CIFAR-100 python pickles (b'data' (N, 3072) uint8, "
        "b'fine_labels'; meta b'fine_label_names')",
        "extract cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into <root>/"),
    "mini-imagenet": DatasetSpec(
        _load_mini_imagenet,
        "<root>/mini-imagenet/mini-imagenet-cache-{train,val,test}.pkl, pickled dicts with 'image_data' "
        "(N, 84, 84, 3) uint8 and 'class_dict' {class: [indices]} (64/16/20 classes)",
        "place the mini-ImageNet cache pickles of the Ravi & Larochelle split (as distributed for "
        "learn2learn and MAML++) in <root>/mini-imagenet/"),
    "digits": DatasetSpec(
        _load_digits,
        "no files: scikit-learn's bundled 8x8 digits (sklearn.datasets.load_digits); classes are (digit, "
        "rotation by 0/90/180/270 degrees) pairs, split by digit: 0-5 train, 6-7 validation, 8-9 test",
        "pip install scikit-learn", needs_root=False),
}
