"""Few-shot vision data: each on-disk form read from a tiny fixture copy written here, the split
conventions (class-disjoint splits, rotations kept with their Omniglot character or digit), precise
errors for missing or corrupt files, the real scikit-learn digits split by digit into (digit, rotation)
classes, and the N-way K-shot episode sampler."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from simulations.vision import datasets
from simulations.vision.datasets import ClassPool, load_pool
from simulations.vision.episodes import episode_sampler, sample_episodes
from theory.ground.errors import DatasetError, ParameterError

SPLITS = ("train", "validation", "test")
ROTATIONS = ("rot0", "rot90", "rot180", "rot270")


# ---------------------------------------------------------------- Omniglot
def _write_omniglot(root, layout: dict[str, dict[str, int]], drawings: int, seed: int = 0) -> None:
    """``layout[set][alphabet]`` characters of ``drawings`` 105×105 1-bit PNGs: white paper, black strokes."""
    rng = np.random.default_rng(seed)
    for part, alphabets in layout.items():
        for alphabet, n_chars in alphabets.items():
            for c in range(1, n_chars + 1):
                folder = root / "omniglot" / part / alphabet / f"character{c:03d}"
                folder.mkdir(parents=True)
                for d in range(drawings):
                    page = np.full((105, 105), 255, np.uint8)
                    for r0, c0 in rng.integers(0, 90, (3, 2)):  # three strokes, asymmetric
                        page[r0:r0 + 15, c0:c0 + 4] = 0
                    Image.fromarray(page).convert("1").save(folder / f"{c:04d}_{d + 1:02d}.png")


# The real character counts (964 background, 659 evaluation); "Aaa" sorts first but comes after
# every background alphabet, since background characters precede evaluation ones.
FULL = {"images_background": {"Greek": 400, "Korean": 300, "Zulu": 264},
        "images_evaluation": {"Aaa": 359, "Tengwar": 300}}


@pytest.fixture(scope="module")
def omniglot(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _write_omniglot(root, FULL, drawings=2)
    return root, {s: load_pool("omniglot", s, str(root)) for s in SPLITS}


def test_omniglot_split_sizes_and_order(omniglot):
    root, pools = omniglot
    order = [f"{a}/character{c:03d}" for part in FULL.values() for a in sorted(part)
             for c in range(1, part[a] + 1)]
    bounds = {"train": (0, 1100), "validation": (1100, 1200), "test": (1200, 1623)}
    for split, pool in pools.items():
        lo, hi = bounds[split]
        assert pool.name == f"omniglot/{split}" and pool.image_shape == (1, 28, 28)
        assert list(pool.classes) == [f"{ch}/{r}" for ch in order[lo:hi] for r in ROTATIONS]
        assert all(t.dtype == torch.float32 and t.shape == (2, 1, 28, 28) for t in pool.images)
        x = torch.cat(pool.images)
        assert 0 <= x.min() and x.max() <= 1 and 0 < x.mean() < 0.5  # strokes high, paper 0
    assert pools["train"].classes[-1].startswith("Aaa/character136")  # 964 + 136 = 1100
    assert (root / "omniglot" / "cache_28x28.npz").is_file()


def test_omniglot_rotations_stay_with_their_character(omniglot):
    _, pools = omniglot
    chars = {}
    for split, pool in pools.items():
        names = [c.rsplit("/", 1) for c in pool.classes]
        chars[split] = {base for base, _ in names}
        for base in chars[split]:  # all four rotations of each character, in this split only
            assert sorted(r for b, r in names if b == base) == sorted(ROTATIONS)
        for i in range(0, len(pool.classes), 97 * 4):
            x0 = pool.images[i]
            for k in (1, 2, 3):
                assert torch.equal(pool.images[i + k], torch.rot90(x0, k, dims=(2, 3)))
            assert not torch.equal(pool.images[i + 1], x0)
    assert not chars["train"] & chars["validation"] and not chars["train"] & chars["test"]
    assert not chars["validation"] & chars["test"]
    assert len(chars["train"] | chars["validation"] | chars["test"]) == 1623


def test_omniglot_pixels_are_one_minus_the_resized_drawing(omniglot):
    root, pools = omniglot
    png = root / "omniglot" / "images_evaluation" / "Tengwar" / "character300" / "0300_02.png"
    with Image.open(png) as img:
        small = np.asarray(img.convert("L").resize((28, 28), Image.Resampling.LANCZOS), dtype=float)
    x = pools["test"].images[pools["test"].classes.index("Tengwar/character300/rot0")][1, 0]
    np.testing.assert_allclose(x.numpy(), 1 - small / 255, atol=1e-6)


SMALL = {"images_background": {"Beta": 3, "Alpha": 1}, "images_evaluation": {"Gamma": 2}}


@pytest.fixture
def small_omniglot(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_OMNIGLOT_SPLIT", {"train": 3, "validation": 1, "test": 2})
    _write_omniglot(tmp_path, SMALL, drawings=3)
    return tmp_path


def test_omniglot_cache_is_used_and_rebuilt_when_files_change(small_omniglot, monkeypatch):
    root = small_omniglot
    first = load_pool("omniglot", "test", str(root))
    assert first.classes[0] == "Gamma/character001/rot0" and first.classes[-1] == "Gamma/character002/rot270"

    def no_decoding(root, path):
        raise AssertionError(f"decoded {path} although the cache matches")

    monkeypatch.setattr(datasets, "_decode_png", no_decoding)
    again = load_pool("omniglot", "test", str(root))
    assert all(torch.equal(a, b) for a, b in zip(first.images, again.images))
    extra = root / "omniglot" / "images_evaluation" / "Gamma" / "character002" / "extra.png"
    Image.new("L", (105, 105), 0).save(extra)
    with pytest.raises(AssertionError, match="although the cache matches"):
        load_pool("omniglot", "test", str(root))
    monkeypatch.undo()
    monkeypatch.setattr(datasets, "_OMNIGLOT_SPLIT", {"train": 3, "validation": 1, "test": 2})
    rebuilt = load_pool("omniglot", "test", str(root))
    assert len(rebuilt.images[-1]) == 4 and torch.all(rebuilt.images[-4][-1] == 1)  # black page: all stroke
    (root / "omniglot" / "cache_28x28.npz").write_bytes(b"not an npz")
    assert len(load_pool("omniglot", "test", str(root)).images[-1]) == 4  # a broken cache is rebuilt


def test_omniglot_errors_name_the_path(small_omniglot):
    root = small_omniglot
    bad = root / "omniglot" / "images_background" / "Alpha" / "character001" / "0001_02.png"
    good = bad.read_bytes()
    for content in (b"garbage", good[: len(good) // 2]):
        bad.write_bytes(content)
        with pytest.raises(DatasetError, match="unreadable PNG") as err:
            load_pool("omniglot", "train", str(root))
        assert str(bad) in str(err.value) and "\n" not in str(err.value)
    empty = root / "omniglot" / "images_background" / "Alpha" / "character002"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"no \.png drawings in character folder: .*character002"):
        load_pool("omniglot", "train", str(root))
    empty.rmdir()
    (root / "omniglot" / "images_evaluation").rename(root / "elsewhere")
    with pytest.raises(DatasetError, match=r"missing folder: .*images_evaluation; expected .*brendenlake"):
        load_pool("omniglot", "train", str(root))


def test_omniglot_character_count_must_match_the_split(tmp_path):
    _write_omniglot(tmp_path, SMALL, drawings=1)
    with pytest.raises(DatasetError, match="found 6 character folders, not the 1623 of Omniglot"):
        load_pool("omniglot", "train", str(tmp_path))


# ---------------------------------------------------------------- CIFAR-FS
TEST_NAMES = datasets._CIFARFS_HELD_OUT["test"]
VAL_NAMES = datasets._CIFARFS_HELD_OUT["validation"]


def _cifar_names() -> list[str]:
    names = [*TEST_NAMES, *VAL_NAMES, *(f"other_{i:02d}" for i in range(64))]
    return [names[i] for i in np.random.default_rng(1).permutation(100)]  # the split must not rely on order


def _write_cifar(root, names=None, per_class=(2, 1)) -> None:
    """CIFAR-100 pickles (bytes keys, as the official files load): image j of class c has red = c,
    green = its index in the file, blue = the row-major position mod 256."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    names = _cifar_names() if names is None else names
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [n.encode() for n in names]}))
    for part, n in zip(("train", "test"), per_class):
        labels = np.repeat(np.arange(100), n)
        data = np.empty((len(labels), 3, 1024), np.uint8)
        data[:, 0], data[:, 1] = labels[:, None], np.arange(len(labels))[:, None] % 256
        data[:, 2] = np.arange(1024) % 256
        blob = {b"data": data.reshape(-1, 3072), b"fine_labels": labels.tolist()}
        (folder / part).write_bytes(pickle.dumps(blob, protocol=2))


def test_cifarfs_pools(tmp_path):
    _write_cifar(tmp_path)
    pools = {s: load_pool("cifarfs", s, str(tmp_path)) for s in SPLITS}
    assert set(pools["test"].classes) == set(TEST_NAMES) and set(pools["validation"].classes) == set(VAL_NAMES)
    assert [len(p.classes) for p in pools.values()] == [64, 16, 20]
    assert len({c for p in pools.values() for c in p.classes}) == 100
    names = _cifar_names()
    for pool in pools.values():
        assert pool.image_shape == (3, 32, 32)
        for name, x in zip(pool.classes, pool.images):
            assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32  # 2 train + 1 test merged
            assert 0 <= x.min() and x.max() <= 1
            assert torch.all(x[:, 0] == names.index(name) / 255)
            assert torch.equal(x[0, 2], (torch.arange(1024) % 256).view(32, 32) / 255)


def test_cifarfs_errors(tmp_path):
    _write_cifar(tmp_path)
    folder = tmp_path / "cifar-100-python"
    train = folder / "train"
    good = train.read_bytes()
    train.write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match=f"cannot unpickle .*: {train}; expected .*cifar-100-python"):
        load_pool("cifarfs", "train", str(tmp_path))
    train.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}))
    with pytest.raises(DatasetError, match=f"lacks key.* fine_labels: {train}"):
        load_pool("cifarfs", "train", str(tmp_path))
    train.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"fine_labels": [0, 1]}))
    with pytest.raises(DatasetError, match=f"not an \\(N, 3072\\) uint8 array.*: {train}"):
        load_pool("cifarfs", "test", str(tmp_path))
    (folder / "meta").unlink()
    with pytest.raises(DatasetError, match=f"missing file: {folder / 'meta'}; .*cifar-100-python.tar.gz"):
        load_pool("cifarfs", "train", str(tmp_path))


def test_cifarfs_label_names_must_give_64_16_20(tmp_path):
    _write_cifar(tmp_path, names=[n.replace("whale", "whales") for n in _cifar_names()])
    with pytest.raises(DatasetError, match=r"not the 100 CIFAR-100 names .*lacking whale"):
        load_pool("cifarfs", "validation", str(tmp_path))


# ---------------------------------------------------------------- mini-ImageNet
def _write_mini(root) -> dict[str, list[str]]:
    """Pickles of 64/16/20 classes of 2 images; image j has channels (10, 20, 30) + j."""
    folder = root / "mini-imagenet"
    folder.mkdir(parents=True)
    names = {}
    for part, n in (("train", 64), ("val", 16), ("test", 20)):
        data = np.empty((2 * n, 84, 84, 3), np.uint8)
        data[:] = np.array([10, 20, 30], np.uint8)
        data += np.arange(2 * n, dtype=np.uint8)[:, None, None, None]
        names[part] = [f"n{part}{c:03d}" for c in range(n)]
        blob = {"image_data": data, "class_dict": {m: [2 * c, 2 * c + 1] for c, m in enumerate(names[part])}}
        (folder / f"mini-imagenet-cache-{part}.pkl").write_bytes(pickle.dumps(blob))
    return names


def test_mini_imagenet_pools(tmp_path):
    names = _write_mini(tmp_path)
    for split, part in zip(SPLITS, ("train", "val", "test")):
        pool = load_pool("mini-imagenet", split, str(tmp_path))
        assert list(pool.classes) == names[part] and pool.image_shape == (3, 84, 84)
        for c, x in enumerate(pool.images):
            assert x.shape == (2, 3, 84, 84) and x.dtype == torch.float32
            expected = (torch.tensor([10.0, 20, 30]) + 2 * c + torch.arange(2.0)[:, None]) / 255  # (2, 3)
            assert torch.equal(x[:, :, 5, 7], expected)


def test_mini_imagenet_errors(tmp_path):
    _write_mini(tmp_path)
    folder = tmp_path / "mini-imagenet"
    val, test = folder / "mini-imagenet-cache-val.pkl", folder / "mini-imagenet-cache-test.pkl"
    val.write_bytes(test.read_bytes())  # a swapped file is caught by its class count
    with pytest.raises(DatasetError, match=f"'class_dict' has 20 classes, not the 16 .*: {val}"):
        load_pool("mini-imagenet", "validation", str(tmp_path))
    test.write_bytes(test.read_bytes()[:1000])
    with pytest.raises(DatasetError, match=f"cannot unpickle .*: {test}; expected .*cache-{{train,val,test}}"):
        load_pool("mini-imagenet", "test", str(tmp_path))
    test.write_bytes(pickle.dumps({"image_data": np.zeros((2, 32, 32, 3), np.uint8), "class_dict": {}}))
    with pytest.raises(DatasetError, match=f"'image_data' is not an \\(N, 84, 84, 3\\) uint8 array: {test}"):
        load_pool("mini-imagenet", "test", str(tmp_path))
    (folder / "mini-imagenet-cache-train.pkl").unlink()
    with pytest.raises(DatasetError, match=r"missing file: .*mini-imagenet-cache-train\.pkl"):
        load_pool("mini-imagenet", "train", str(tmp_path))


# ---------------------------------------------------------------- digits and load_pool
DIGITS_SPLIT = {"train": "012345", "validation": "67", "test": "89"}


def test_digits_classes_are_digit_rotation_pairs_split_by_digit():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pools = {s: load_pool("digits", s) for s in SPLITS}
    assert [len(p.classes) for p in pools.values()] == [24, 8, 8]
    for split, pool in pools.items():
        assert pool.name == f"digits/{split}" and pool.image_shape == (1, 8, 8)
        assert list(pool.classes) == [f"{d}/{r}" for d in DIGITS_SPLIT[split] for r in ROTATIONS]
        for i in range(0, len(pool.classes), 4):  # each digit: all its images, then their exact rotations
            upright = pool.images[i]
            digit = int(pool.classes[i][0])
            np.testing.assert_array_equal(upright[:, 0].numpy(), bunch.images[bunch.target == digit] / 16)
            for k in (1, 2, 3):
                assert torch.equal(pool.images[i + k], torch.rot90(upright, k, dims=(2, 3)))
                assert not torch.equal(pool.images[i + k], upright)
        x = torch.cat(pool.images)
        assert x.dtype == torch.float32 and x.min() == 0 and x.max() == 1
    digits = {s: {c.split("/")[0] for c in p.classes} for s, p in pools.items()}
    assert not digits["train"] & digits["validation"] and not digits["train"] & digits["test"]
    assert not digits["validation"] & digits["test"] and len(set.union(*digits.values())) == 10
    assert sum(len(t) for p in pools.values() for t in p.images) == 4 * 1797  # every image, in four rotations


@pytest.mark.parametrize("split", ["validation", "test"])
def test_five_way_episodes_from_the_eight_class_digit_splits(split):
    pool = load_pool("digits", split)
    batch = episode_sampler(pool, 5, 1, 15)(6, torch.Generator().manual_seed(0))
    assert batch.x_support.shape == (6, 5, 1, 8, 8) and batch.x_query.shape == (6, 75, 1, 8, 8)
    with pytest.raises(ParameterError, match=f"ways = 9 .*<= 8 \\(the classes in digits/{split}\\)"):
        episode_sampler(pool, 9, 1, 15)


def test_load_pool_rejects_unknown_names_and_missing_roots(tmp_path):
    with pytest.raises(ParameterError, match="dataset = 'imagenet'") as err:
        load_pool("imagenet", "train", str(tmp_path))
    assert err.value.parameter == "dataset"
    with pytest.raises(ParameterError, match=r"split = 'val'.*train, validation, test"):
        load_pool("digits", "val")
    with pytest.raises(DatasetError, match=r"^omniglot: no data root given \(omniglot is read from files\); "
                                           "expected <root>/omniglot"):
        load_pool("omniglot", "train")
    with pytest.raises(DatasetError, match=rf"^cifarfs: data root is not a folder \(it does not exist\): "
                                           rf"{tmp_path / 'nope'}; expected {tmp_path / 'nope'}/cifar-100-python"):
        load_pool("cifarfs", "train", str(tmp_path / "nope"))
    (tmp_path / "file").write_text("")
    with pytest.raises(DatasetError, match=r"data root is not a folder \(it is a file\)"):
        load_pool("mini-imagenet", "train", str(tmp_path / "file"))
    assert load_pool("digits", "test", str(tmp_path / "nope")).name == "digits/test"  # the API reads no root


# ---------------------------------------------------------------- episodes
def _identity_pool(n_classes: int = 12) -> ClassPool:
    """Class c has 6 + c % 3 images; image i of class c is the 2-pixel picture (c, i) / 100."""
    images = []
    for c in range(n_classes):
        i = torch.arange(6 + c % 3, dtype=torch.float32)
        images.append(torch.stack([torch.full_like(i, c), i], 1).view(-1, 2, 1, 1) / 100)
    return ClassPool("identity", tuple(str(c) for c in range(n_classes)), tuple(images))


def _ids(x: torch.Tensor) -> list[tuple[int, int]]:
    return [tuple(p) for p in torch.round(x.view(-1, 2) * 100).long().tolist()]


def test_episodes_shapes_labels_and_disjoint_support_query():
    ways, shots, query, tasks = 5, 2, 3, 7
    batch = sample_episodes(_identity_pool(), ways, shots, query, tasks, torch.Generator().manual_seed(0))
    assert batch.x_support.shape == (tasks, ways * shots, 2, 1, 1) and batch.x_support.dtype == torch.float32
    assert batch.x_query.shape == (tasks, ways * query, 2, 1, 1) and batch.weights is None
    assert batch.y_support.dtype == batch.y_query.dtype == torch.int64 and batch.n_tasks == tasks
    for t in range(tasks):
        assert torch.bincount(batch.y_support[t], minlength=ways).tolist() == [shots] * ways
        assert torch.bincount(batch.y_query[t], minlength=ways).tolist() == [query] * ways
        support, queries = _ids(batch.x_support[t]), _ids(batch.x_query[t])
        assert len(set(support) | set(queries)) == ways * (shots + query)  # no image twice
        label_class = {}
        for (c, _), y in zip(support + queries, torch.cat([batch.y_support[t], batch.y_query[t]]).tolist()):
            assert label_class.setdefault(y, c) == c  # one class per label, in support and query
        assert len(set(label_class.values())) == ways


def test_episodes_relabel_classes_per_task_and_are_reproducible():
    pool = _identity_pool(5)
    batch = sample_episodes(pool, 5, 1, 1, 200, torch.Generator().manual_seed(3))
    labels_of_class_0 = [int(batch.y_support[t][[c for c, _ in _ids(batch.x_support[t])].index(0)])
                         for t in range(200)]
    counts = np.bincount(labels_of_class_0, minlength=5)
    assert counts.min() >= 20, f"class 0 should take each of 5 labels about 40 times in 200 tasks: {counts}"
    same = sample_episodes(pool, 5, 1, 1, 200, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(
        (batch.x_support, batch.y_support, batch.x_query, batch.y_query),
        (same.x_support, same.y_support, same.x_query, same.y_query)))
    other = sample_episodes(pool, 5, 1, 1, 200, torch.Generator().manual_seed(4))
    assert not torch.equal(batch.x_support, other.x_support)
    sampler = episode_sampler(pool, 5, 1, 1)
    assert torch.equal(sampler(200, torch.Generator().manual_seed(3)).x_query, batch.x_query)


@pytest.mark.parametrize(("kwargs", "parameter", "valid"), [
    ({"ways": 13}, "ways", "<= 12 (the classes in identity)"),
    ({"ways": 0}, "ways", ">= 1 and <= 12"),
    ({"shots": 0}, "shots", ">= 1 and <= 5"),
    ({"shots": 6}, "shots", "<= 5 (shots + query <= 6, the images in the smallest class"),
    ({"shots": 3, "query": 4}, "query", "<= 3 (shots + query <= 6"),
    ({"query": 0}, "query", ">= 1 and <= 5"),
])
def test_impossible_episodes_raise_parameter_error(kwargs, parameter, valid):
    request = {"ways": 5, "shots": 1, "query": 1, **kwargs}
    for call in (lambda: episode_sampler(_identity_pool(), **request),
                 lambda: sample_episodes(_identity_pool(), **request, n_tasks=2, gen=torch.Generator())):
        with pytest.raises(ParameterError) as err:
            call()
        assert err.value.parameter == parameter and valid in str(err.value)
    with pytest.raises(ParameterError, match="n_tasks"):
        sample_episodes(_identity_pool(), 5, 1, 1, 0, torch.Generator())


def test_episodes_from_real_pools(omniglot):
    gen = torch.Generator().manual_seed(0)
    batch = episode_sampler(load_pool("digits", "train"), 20, 5, 15)(4, gen)
    assert batch.x_support.shape == (4, 100, 1, 8, 8) and batch.x_query.shape == (4, 300, 1, 8, 8)
    batch = episode_sampler(omniglot[1]["test"], 20, 1, 1)(3, gen)
    assert batch.x_support.shape == (3, 20, 1, 28, 28) and batch.y_query.shape == (3, 20)


def test_class_pool_checks_its_tensors():
    with pytest.raises(ValueError, match="2 class names for 1 image tensors"):
        ClassPool("p", ("a", "b"), (torch.zeros(2, 1, 3, 3),))
    with pytest.raises(ValueError, match="one common image shape"):
        ClassPool("p", ("a", "b"), (torch.zeros(2, 1, 3, 3), torch.zeros(2, 1, 4, 4)))
    assert repr(_identity_pool()) == "ClassPool('identity', 12 classes, 84 images of shape (2, 1, 1))"
