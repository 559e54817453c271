"""Image folders in Keras' ``image_dataset_from_directory`` layout: ``train/<class>/*.png``, ``test/...``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evoprune.data.arrays import check_same_shape, fail
from evoprune.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SPLITS = ("train", "test")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def is_image_folder(directory: Path) -> bool:
    """True when ``directory`` holds a ``train/`` or ``test/`` subdirectory (else: IDX files)."""
    return any((Path(directory) / split).is_dir() for split in SPLITS)


def class_names(split_dir: Path) -> tuple[str, ...]:
    """The class directories of one split, sorted by name (hidden directories skipped)."""
    return tuple(sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")))


def image_files(class_dir: Path) -> list[Path]:
    """Image files under a class directory (recursively, as Keras does), sorted by path."""
    return sorted(
        p
        for p in class_dir.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def load_image_folder(directory: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[str, ...]]:
    """Loads ``train`` and ``test`` splits from class subdirectories.

    Labels are class indices in the order of the sorted class names; both splits must have
    the same class names, every class at least one image, and every image the same size.
    Grayscale images give one channel, colour images three (RGBA and palette images are
    converted to RGB); when a folder mixes both, grayscale images are converted to RGB.

    Args:
        directory: the folder holding ``train/`` and ``test/``.

    Returns:
        ``({"train": (images, labels), "test": (images, labels)}, class_names)``, images uint8
        ``(n, H, W, C)``, labels int64.

    Raises:
        DataError: a missing split directory, no class directories, different class names
            in train and test, an empty class, an unreadable image or mixed image sizes,
            each naming the directory or file.
    """
    directory = Path(directory)
    names: tuple[str, ...] = ()
    files: dict[str, list[tuple[Path, int]]] = {}
    for split in SPLITS:
        split_dir = directory / split
        if not split_dir.is_dir():
            raise fail(
                split_dir,
                "missing split directory. Expected train/<class>/ and test/<class>/ "
                "subdirectories of images. Received: no such directory.",
            )
        found = class_names(split_dir)
        if not found:
            raise fail(
                split_dir,
                "no class directories. Expected one subdirectory of images per class. Received: none.",
            )
        if split == "test" and found != names:
            raise fail(
                split_dir,
                f"class names differ from {directory / 'train'}. Expected: "
                f"{', '.join(names)}. Received: {', '.join(found)}.",
            )
        names = found
        files[split] = []
        for label, name in enumerate(names):
            paths = image_files(split_dir / name)
            if not paths:
                raise fail(
                    split_dir / name,
                    f"empty class. Expected at least one image ({'|'.join(IMAGE_SUFFIXES)}). Received: none.",
                )
            files[split].extend((path, label) for path in paths)
    pixels = {split: [_read_image(path) for path, _ in files[split]] for split in SPLITS}
    rgb = any(image.ndim == 3 for split in SPLITS for image in pixels[split])
    splits = {}
    for split in SPLITS:
        images = _stack([(path, image) for (path, _), image in zip(files[split], pixels[split])], rgb)
        splits[split] = (images, np.array([label for _, label in files[split]], dtype=np.int64))
    check_same_shape([(str(directory / split), splits[split][0]) for split in SPLITS])
    return splits, names


def _read_image(path: Path) -> np.ndarray:
    """One image as uint8: ``(H, W)`` for grayscale modes, ``(H, W, 3)`` otherwise."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in _GRAY_MODES:
                return np.asarray(image.convert("L"), dtype=np.uint8)
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise fail(
            path,
            f"unreadable image. Expected a valid {path.suffix.lstrip('.').upper()} file. "
            f"Received: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        ) from None


def _stack(named: list[tuple[Path, np.ndarray]], rgb: bool) -> np.ndarray:
    """Stacks one split's images ``(n, H, W, C)``, converting grayscale to RGB when ``rgb``."""
    first_path, first = named[0]
    expected = first.shape[:2]
    out = np.empty((len(named), *expected, 3 if rgb else 1), dtype=np.uint8)
    for i, (path, image) in enumerate(named):
        if image.shape[:2] != expected:
            raise DataError(
                " ".join(
                    f"{path}: mixed image sizes. "
                    f"Expected {expected[1]}x{expected[0]} (W x H) as {first_path}. "
                    f"Received: {image.shape[1]}x{image.shape[0]}.".splitlines()
                )
            )
        out[i] = image[..., None] if image.ndim == 2 else image
    return out
