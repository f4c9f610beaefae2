"""CIFAR-10 images from the official binary distribution, read with numpy (no pickles).

The "CIFAR-10 binary version" (``cifar-10-binary.tar.gz``, the one the dataset's page lists for C
programs) holds ``cifar-10-batches-bin/data_batch_{1..5}.bin`` and ``test_batch.bin``: each
file is a run of 3,073-byte records, one label byte (0..9) and then the 32x32 image as
1,024 red, 1,024 green and 1,024 blue bytes, row by row. Reading it needs no unpickling,
unlike the "python version", whose batches are pickles and so run code when loaded.

The archive is read member by member straight from the tarball: nothing is extracted, so
member names (``../`` and the like) never reach the filesystem.

Example::

    arrays = read_cifar10("cifar-10-binary.tar.gz")
    arrays.x_train.shape, arrays.y_train[:3]
    ((50000, 3, 32, 32), array([6, 9, 9]))
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Where the CIFAR-10 binary version is published, its name and its published md5.
CIFAR10_BINARY_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_BINARY_NAME = "cifar-10-binary.tar.gz"
CIFAR10_BINARY_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"

#: The batch files, in the order their images are numbered (training images 0..49,999).
TRAIN_BATCHES = tuple(f"data_batch_{k}.bin" for k in range(1, 6))
TEST_BATCH = "test_batch.bin"
BATCH_DIRECTORY = "cifar-10-batches-bin"

_IMAGE_BYTES = 3 * 32 * 32
RECORD_BYTES = 1 + _IMAGE_BYTES


class CIFAR10FormatError(ValueError):
    """A file that is not CIFAR-10 in the binary format; the message names it and why."""


@dataclass(frozen=True)
class CIFAR10Arrays:
    """CIFAR-10 as numpy arrays: images ``uint8`` ``(n, 3, 32, 32)``, labels ``int64`` ``(n,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def parse_records(blob: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one batch file's bytes (``source`` names it in errors).

    >>> record = bytes([3]) + bytes(range(256)) * 12
    >>> images, labels = parse_records(record * 2, "two.bin")
    >>> images.shape, labels.tolist(), int(images[0, 2, 31, 31])
    ((2, 3, 32, 32), [3, 3], 255)
    """
    if not blob or len(blob) % RECORD_BYTES:
        raise CIFAR10FormatError(
            f"{source}: {len(blob)} bytes is not a whole number of {RECORD_BYTES}-byte "
            "CIFAR-10 records (1 label byte + 3072 pixel bytes)"
        )
    records = np.frombuffer(blob, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise CIFAR10FormatError(
            f"{source}: label byte {int(labels.max())} is not a CIFAR-10 class (0..9)"
        )
    images = records[:, 1:].reshape(-1, 3, 32, 32).copy()
    return images, labels


def read_cifar10(path: Path | str) -> CIFAR10Arrays:
    """CIFAR-10 from the binary distribution: the ``.tar.gz`` itself, or a directory holding
    the batch files (extracted, with or without their ``cifar-10-batches-bin/`` folder).

    Any number of records per batch file is read (a small archive in the same format works
    the same); :class:`CIFAR10FormatError` names a file that is missing or malformed.
    """
    path = Path(path)
    if path.is_dir():
        folder = path / BATCH_DIRECTORY if (path / BATCH_DIRECTORY).is_dir() else path
        blobs = {name: _read_file(folder / name) for name in (*TRAIN_BATCHES, TEST_BATCH)}
    else:
        blobs = _read_tarball(path)
    train = [parse_records(blobs[name], f"{path}: {name}") for name in TRAIN_BATCHES]
    x_test, y_test = parse_records(blobs[TEST_BATCH], f"{path}: {TEST_BATCH}")
    return CIFAR10Arrays(
        x_train=np.concatenate([images for images, _ in train]),
        y_train=np.concatenate([labels for _, labels in train]),
        x_test=x_test,
        y_test=y_test,
    )


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CIFAR10FormatError(
            f"{path}: no such file (a CIFAR-10 binary batch directory holds "
            f"{', '.join(TRAIN_BATCHES)} and {TEST_BATCH})"
        ) from None
    except OSError as error:
        raise CIFAR10FormatError(f"{path}: cannot read it ({error.strerror or error})") from None


def _read_tarball(path: Path) -> dict[str, bytes]:
    """The batch files' bytes, found by base name anywhere in the archive."""
    wanted = {*TRAIN_BATCHES, TEST_BATCH}
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for member in archive:
                name = member.name.rsplit("/", 1)[-1]
                if name in wanted and member.isfile() and name not in blobs:
                    handle = archive.extractfile(member)
                    assert handle is not None  # a regular file always has contents
                    blobs[name] = handle.read()
    except FileNotFoundError:
        raise CIFAR10FormatError(f"{path}: no such file") from None
    except (tarfile.TarError, OSError, EOFError) as error:
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise CIFAR10FormatError(
            f"{path}: not a readable CIFAR-10 binary archive (.tar.gz): {reason}"
        ) from None
    missing = sorted(wanted - set(blobs))
    if missing:
        raise CIFAR10FormatError(
            f"{path}: the archive lacks {', '.join(missing)}; expected the CIFAR-10 binary "
            f"version ({CIFAR10_BINARY_NAME}, with {BATCH_DIRECTORY}/)"
        )
    return blobs
