"""CIFAR-10 at miniature size for CPU tests: an archive in the official binary format, and a
``cifar10-resnet9`` definition scaled down to it (same code, same keys, tiny sizes).

Example::

    md5 = write_cifar_archive(tmp_path / "cifar-10-binary.tar.gz")
    bench = tiny_cifar(url="http://127.0.0.1:8000/cifar-10-binary.tar.gz", md5=md5)
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from pytest_unlearn.benchmarks.cifar10_data import (
    BATCH_DIRECTORY,
    CIFAR10_BINARY_NAME,
    TEST_BATCH,
    TRAIN_BATCHES,
)
from pytest_unlearn.benchmarks.cifar10_resnet9 import FAST_RECIPE, CIFAR10ResNet9
from pytest_unlearn.benchmarks.spec import RemoteFile

#: Images per training batch file (five files) and in the test file.
PER_BATCH = 60
N_TEST = 100


def record_batch(labels: np.ndarray, images: np.ndarray) -> bytes:
    """The bytes of one batch file: per image, its label byte then its 3,072 pixel bytes."""
    flat = images.reshape(len(images), -1).astype(np.uint8)
    return np.concatenate([labels.astype(np.uint8)[:, None], flat], axis=1).tobytes()


def cifar_batches(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Labels and (n, 3, 32, 32) uint8 images of every batch file; each class's images are
    brighter in its own channel pattern, so a model can learn something in one epoch."""
    rng = np.random.default_rng(seed)
    batches = {}
    for name, n in [(b, PER_BATCH) for b in TRAIN_BATCHES] + [(TEST_BATCH, N_TEST)]:
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 128, (n, 3, 32, 32)).astype(np.uint8)
        images[:, labels % 3] += (labels[:, None, None] * 12).astype(np.uint8)[:, None]
        batches[name] = (labels, images)
    return batches


def write_cifar_archive(path: Path, seed: int = 0) -> str:
    """Write a ``cifar-10-binary.tar.gz``-format archive; return its md5."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, (labels, images) in cifar_batches(seed).items():
            blob = record_batch(labels, images)
            info = tarfile.TarInfo(f"{BATCH_DIRECTORY}/{name}")
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def tiny_cifar(url: str = "http://127.0.0.1:9/none", md5: str = "0" * 32) -> CIFAR10ResNet9:
    """``cifar10-resnet9`` (same name, so it stands in for it in a run) at miniature size:
    300 training and 100 test images from ``url``, ResNet-9 widths (4, 8, 8, 4), one epoch,
    forget sets knn20, random20 and seq2x5."""

    class TinyCIFAR10ResNet9(CIFAR10ResNet9):
        n_train = 5 * PER_BATCH
        n_validation = N_TEST
        widths = (4, 8, 8, 4)
        recipe = replace(FAST_RECIPE, epochs=1, batch_size=64, peak_epoch=0)
        archive = RemoteFile(url=url, filename=CIFAR10_BINARY_NAME, md5=md5)
        forget_size = 20
        sequential_requests = (2, 5)
        members_at_once = 2
        eval_points_at_once = 128

    return TinyCIFAR10ResNet9()
