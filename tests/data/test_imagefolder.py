"""Image folders (Keras' ``image_dataset_from_directory`` layout): labels, channels, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from evoprune.config import DataConfig
from evoprune.data import dataset as data
from evoprune.data.imagefolder import load_image_folder
from evoprune.errors import DataError
from synthetic import write_folder


def test_gray_pngs_labels_follow_sorted_class_names(tmp_path):
    root = write_folder(tmp_path / "gray", (12, 12), ("b_cat", "a_dog", "c_owl"), per_class=4)
    ds = data.load_dataset(DataConfig(data_dir=str(root), validation_fraction=0.25))
    assert ds.name == f"folder:{root.resolve()}"
    assert ds.class_names == ("a_dog", "b_cat", "c_owl") and ds.n_classes == 3
    assert ds.input_shape == (12, 12, 1) and ds.train[0].dtype == np.uint8
    assert [len(s[1]) for s in (ds.train, ds.validation, ds.test)] == [9, 3, 12]
    # write_folder brightens class i by 50*i in its given order: b_cat=0, a_dog=1, c_owl=2
    first = np.asarray(Image.open(root / "test" / "a_dog" / "000.png"))
    np.testing.assert_array_equal(ds.test[0][0, ..., 0], first)
    assert ds.test[1].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    means = [ds.test[0][ds.test[1] == k].mean() for k in range(3)]
    assert means[1] < means[0] < means[2]


def test_rgb_jpeg_and_rgba_png_give_three_channels(tmp_path):
    classes = tuple(f"class{i}" for i in range(5))
    write_folder(tmp_path / "rgb", (32, 32), classes, per_class=2, mode="RGB", suffix=".jpg")
    write_folder(tmp_path / "rgb", (32, 32), classes[:1], per_class=1, mode="RGBA", suffix=".PNG")
    splits, names = load_image_folder(tmp_path / "rgb")
    assert names == classes
    assert splits["train"][0].shape == (11, 32, 32, 3) and splits["test"][0].shape == (11, 32, 32, 3)
    assert np.bincount(splits["train"][1]).tolist() == [3, 2, 2, 2, 2]


def test_gray_images_in_a_colour_folder_become_rgb(tmp_path):
    root = write_folder(tmp_path / "mix", (8, 6), ("a", "b"), per_class=1, mode="RGB")
    gray = np.full((6, 8), 77, np.uint8)
    Image.fromarray(gray).save(root / "train" / "b" / "gray.png")
    splits, _ = load_image_folder(root)
    row = splits["train"][0][-1]
    assert splits["train"][0].shape == (3, 6, 8, 3) and (row == 77).all()


def test_files_that_are_not_images_are_ignored(tmp_path):
    root = write_folder(tmp_path / "f", (8, 8), ("a", "b"), per_class=1)
    (root / "train" / "a" / "notes.txt").write_text("not an image")
    (root / "train" / "a" / ".hidden.png").write_bytes(b"junk")
    splits, _ = load_image_folder(root)
    assert len(splits["train"][1]) == 2


def _case(root, case):
    write_folder(root, (12, 12), ("a", "b", "c"), per_class=2)
    if case == "empty class":
        for path in (root / "train" / "b").iterdir():
            path.unlink()
        return root / "train" / "b", "empty class"
    if case == "class missing from test":
        for path in (root / "test" / "c").iterdir():
            path.unlink()
        (root / "test" / "c").rmdir()
        return root / "test", "class names differ"
    if case == "unreadable image":
        (root / "test" / "a" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
        return root / "test" / "a" / "001.png", "unreadable image"
    if case == "mixed sizes":
        Image.fromarray(np.zeros((12, 10), np.uint8)).save(root / "train" / "c" / "001.png")
        return root / "train" / "c" / "001.png", "mixed image sizes"
    if case == "sizes differ between splits":
        for path in (root / "test").rglob("*.png"):
            Image.fromarray(np.zeros((10, 10), np.uint8)).save(path)
        return root / "test", "mixed image sizes"
    if case == "missing test":
        for path in sorted((root / "test").rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (root / "test").rmdir()
        return root / "test", "missing split directory"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "empty class",
        "class missing from test",
        "unreadable image",
        "mixed sizes",
        "sizes differ between splits",
        "missing test",
    ],
)
def test_bad_folders_are_one_line_naming_the_path(tmp_path, case):
    where, needle = _case(tmp_path / "bad", case)
    with pytest.raises(DataError) as info:
        data.load_dataset(DataConfig(data_dir=str(tmp_path / "bad")))
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(where)) and needle in message, message
