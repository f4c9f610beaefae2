"""``cifar10-resnet9``: EasyDUB's CIFAR-10 / ResNet-9 benchmark, imported, never built here.

EasyDUB (arXiv 2602.16400) publishes 200 pretrained ResNet-9s and, for each of its 10 forget
sets, 200 oracles retrained without it, trained on GPUs. This definition describes that release
(architecture, recipe, data) so that a store converted by ``python -m pytest_unlearn
import-easydub`` can be evaluated; it cannot be built locally.

Two things it does not know by itself, and where they come from:

- the forget sets' indices live in the store (``forget_sets/<name>.safetensors``). An unbound
  instance (the registered one) declares EasyDUB's ten published forget sets by name and kind so
  that ``list`` and test collection work, but refuses to hand out indices or data. The store
  layer reads the indices from an imported store and hands them over:
  ``pytest_unlearn.store.bind_forget_sets(CIFAR10ResNet9(), store)`` returns a new instance
  bound to them (:meth:`CIFAR10ResNet9.with_forget_sets`); the definition never reads a store.

- the CIFAR-10 images: nothing here downloads them. ``load_data()`` reads a local copy from the
  ``.npz`` named by ``PYTEST_UNLEARN_CIFAR10_NPZ`` (keys ``x_train``, ``y_train``, ``x_test``,
  ``y_test``, loaded with ``allow_pickle=False``) and raises a clear error otherwise.

See docs/easydub.md for the layout of the release and every assumption made.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .spec import (
    Benchmark,
    Dataset,
    DataUnavailable,
    ForgetSet,
    ForgetSetKind,
    NotBuildable,
    TrainingRecipe,
)

#: The environment variable naming a local CIFAR-10 copy (an ``.npz``, see :func:`load_cifar10`).
CIFAR10_NPZ_ENV = "PYTEST_UNLEARN_CIFAR10_NPZ"

# EasyDUB normalizes with these per-channel statistics (easydub/data.py, CIFAR10_MEAN/STD).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)

#: ResNet-9 channel widths of EasyDUB's release: stem, stage 1, stage 2, head.
RESNET9_WIDTHS = (64, 128, 256, 128)

# The ten published CIFAR-10 forget sets, by EasyDUB id: kind and description. EasyDUB's on-disk
# layout carries no label; these come from the forget-set list in the README of EasyDUB's
# predecessor repository (RoyRin/data-unlearning-bench, "How forget sets generated").
EASYDUB_FORGET_SETS: dict[int, tuple[ForgetSetKind, str]] = {
    1: ("random", "random training images (published as 10)"),
    2: ("random", "random training images (published as 100)"),
    3: ("random", "random training images (published as 500)"),
    4: ("subpopulation", "highest projection on the 1st principal component of the datamodels"),
    5: ("subpopulation", "highest projection on the 1st principal component of the datamodels"),
    6: ("subpopulation", "both extremes of the 1st principal component of the datamodels"),
    7: ("subpopulation", "highest projection on the 2nd principal component of the datamodels"),
    8: ("subpopulation", "highest projection on the 2nd principal component of the datamodels"),
    9: ("subpopulation", "both extremes of the 2nd principal component of the datamodels"),
    10: ("subpopulation", "nearest in CLIP space to training image 6 (a cassowary)"),
}

_NAME_PATTERN = re.compile(r"set(\d+)")


def forget_set_name(easydub_id: int) -> str:
    """Our name for EasyDUB's forget set ``easydub_id`` (``forget_set_<id>.npy`` on disk).

    >>> forget_set_name(4)
    'set4'
    """
    return f"set{easydub_id}"


def published_description(name: str) -> str:
    """What EasyDUB published about forget set ``name`` (``set<N>``), or a generic label.

    >>> published_description("set10")
    'nearest in CLIP space to training image 6 (a cassowary)'
    """
    match = _NAME_PATTERN.fullmatch(name)
    published = EASYDUB_FORGET_SETS.get(int(match.group(1))) if match else None
    return published[1] if published else "imported forget set"


@dataclass(frozen=True)
class EasyDUBRecipe(TrainingRecipe):
    """EasyDUB's training recipe: the common fields plus what our plain-SGD recipe can't say.

    ``lr`` is the *peak* of a one-cycle schedule (linear warm-up from ``lr / 1e6`` over
    ``peak_epoch`` epochs, then linear decay to ``lr / 1e12``), stepped every minibatch; there
    is no data augmentation; inputs are normalized with ``normalize_mean``/``normalize_std``;
    training runs under bf16 autocast where the GPU supports it.

    >>> RECIPE.lr, RECIPE.lr_schedule, RECIPE.peak_epoch
    (0.4, 'one_cycle_linear', 5)
    """

    lr_schedule: str = "one_cycle_linear"
    peak_epoch: int = 5
    initial_lr_divisor: float = 1e6
    final_lr_divisor: float = 1e6
    augmentation: str = "none"
    precision: str = "bf16_autocast"
    normalize_mean: tuple[float, float, float] = CIFAR10_MEAN
    normalize_std: tuple[float, float, float] = CIFAR10_STD


#: EasyDUB's recipe, from the defaults of its ``train_models.py`` (24 epochs: the released
#: checkpoints are named ``epoch_23``, counting from 0).
RECIPE = EasyDUBRecipe(epochs=24, lr=0.4, batch_size=256, momentum=0.9, weight_decay=5e-4)


class _Residual(nn.Module):
    """``x + module(x)``; the attribute is called ``module`` because EasyDUB's keys say so."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.module(x)


class _Scale(nn.Module):
    """Multiply by a fixed constant (not a parameter, so it is not in the state_dict)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


def _conv_bn_relu(
    channels_in: int, channels_out: int, kernel: int = 3, stride: int = 1, padding: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(),
    )


def resnet9(
    num_classes: int = 10, widths: tuple[int, int, int, int] = RESNET9_WIDTHS
) -> nn.Sequential:
    """The ResNet-9 of EasyDUB's checkpoints: same layers, same order, same state_dict keys.

    The positions inside the ``nn.Sequential`` are part of the keys (``"2.module.0.1.weight"``),
    so parameter-free layers keep their places too. ``widths`` only exists so tests can build a
    tiny model with the same keys.

    >>> model = resnet9()
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    >>> sorted(model.state_dict())[:2]
    ['0.0.weight', '0.1.bias']
    """
    stem, stage1, stage2, head = widths
    return nn.Sequential(
        _conv_bn_relu(3, stem),
        _conv_bn_relu(stem, stage1, kernel=5, stride=2, padding=2),
        _Residual(nn.Sequential(_conv_bn_relu(stage1, stage1), _conv_bn_relu(stage1, stage1))),
        _conv_bn_relu(stage1, stage2),
        nn.MaxPool2d(2),
        _Residual(nn.Sequential(_conv_bn_relu(stage2, stage2), _conv_bn_relu(stage2, stage2))),
        _conv_bn_relu(stage2, head, padding=0),
        nn.AdaptiveMaxPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(head, num_classes, bias=False),
        _Scale(0.2),
    )


class CIFAR10Unavailable(DataUnavailable):
    """The CIFAR-10 images are not on this machine (or the local copy is malformed): a problem
    with the benchmark's data, reported like a store problem (one line), never as the method's."""


def _how_to_provide(name: str = "cifar10-resnet9") -> str:
    return (
        f"benchmark {name!r} needs the CIFAR-10 images as a local .npz with arrays x_train, "
        "y_train, x_test, y_test (e.g. written with numpy.savez from torchvision's "
        f"CIFAR10(...).data/.targets): set {CIFAR10_NPZ_ENV} to its path"
    )


def not_buildable_message(name: str) -> str:
    """Why ``name`` cannot be built, and what to do instead (one line)."""
    return (
        f"benchmark {name!r} cannot be built locally (EasyDUB trained its 200 pretrained and "
        "2,000 oracle ResNet-9s on GPUs) and its forget sets come from its store: convert "
        "EasyDUB's release once with `python -m pytest_unlearn import-easydub "
        "PATH/TO/EasyDUB-dataset --out STORE` and run pytest with --unlearn-store=STORE"
    )


def load_cifar10(path: Path | str, n_train: int, n_test: int) -> tuple[torch.Tensor, ...]:
    """Read a local CIFAR-10 ``.npz``: images normalized as EasyDUB does, labels int64.

    Images may be ``uint8`` NHWC (``(n, 32, 32, 3)``, what torchvision's ``.data`` and
    ``keras.datasets.cifar10`` hold) or NCHW; labels ``(n,)`` or ``(n, 1)``. Returns
    ``(x_train, y_train, x_test, y_test)``, the images float32 NCHW.

    Example::

        x_train, y_train, x_test, y_test = load_cifar10(
            "cifar10.npz", 50_000, 10_000)
    """
    path = Path(path)
    try:
        # allow_pickle=False: an .npz can hold pickled objects, and those would run code.
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except FileNotFoundError:
        raise CIFAR10Unavailable(
            f"{path}: no such file (named by {CIFAR10_NPZ_ENV}); {_how_to_provide()}"
        ) from None
    except KeyError as error:
        raise CIFAR10Unavailable(
            f"{path}: missing array {error.args[0]!r}; expected x_train, y_train, x_test, y_test"
        ) from None
    except (OSError, ValueError) as error:
        reason = " ".join(str(error).split())[:200]
        raise CIFAR10Unavailable(
            f"{path}: not a readable numpy .npz ({reason}); {_how_to_provide()}"
        ) from None
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    result = []
    for split, expected in (("train", n_train), ("test", n_test)):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"].reshape(-1)
        if images.ndim != 4 or len(images) != expected or len(labels) != expected:
            raise CIFAR10Unavailable(
                f"{path}: x_{split} {images.shape} / y_{split} {arrays[f'y_{split}'].shape}; "
                f"expected {expected} images of 32x32x3 and {expected} labels"
            )
        if images.shape[1:] == (32, 32, 3):
            images = images.transpose(0, 3, 1, 2)
        elif images.shape[1:] != (3, 32, 32):
            raise CIFAR10Unavailable(
                f"{path}: x_{split} has shape {images.shape}; expected (n, 32, 32, 3) or "
                "(n, 3, 32, 32)"
            )
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9:
            raise CIFAR10Unavailable(f"{path}: y_{split} must hold integer labels 0..9")
        # Same preprocessing as EasyDUB (ToTensor then Normalize): uint8 / 255, then mean/std.
        pixels = torch.from_numpy(np.ascontiguousarray(images)).float()
        if images.dtype == np.uint8:
            pixels = pixels / 255.0
        result += [(pixels - mean) / std, torch.from_numpy(labels.astype(np.int64))]
    return tuple(result)


class CIFAR10ResNet9(Benchmark):
    """EasyDUB's CIFAR-10 / ResNet-9 benchmark; its forget sets come from a bound store.

    >>> bench = CIFAR10ResNet9()
    >>> [fs.name for fs in bench.forget_sets][:3]
    ['set1', 'set2', 'set3']
    >>> bound = bench.with_forget_sets((ForgetSet("set1", "random", (1067, 2713, 4128)),))
    >>> bound.forget_set("set1").indices, bench is not bound
    ((1067, 2713, 4128), True)
    """

    name = "cifar10-resnet9"
    description = (
        "EasyDUB CIFAR-10, ResNet-9, 50000 train / 10000 validation (imported, not buildable)"
    )
    recipe: TrainingRecipe = RECIPE
    version = 1
    #: Read by whoever builds stores: this benchmark's ensembles can only be imported.
    buildable: ClassVar[bool] = False
    forget_sets_from_store: ClassVar[bool] = True
    # Every method run pushes 60,000 CIFAR-10 images through N ResNet-9s: GPU work, and slow.
    slow = True
    gpu = True
    #: Points of the data set: CIFAR-10's training images, then its test images (EasyDUB's
    #: validation split), each in the published order.
    n_train: ClassVar[int] = 50_000
    n_validation: ClassVar[int] = 10_000
    widths: ClassVar[tuple[int, int, int, int]] = RESNET9_WIDTHS

    def __init__(self, forget_sets: tuple[ForgetSet, ...] | None = None) -> None:
        #: The imported store's forget sets; None while unbound (the registered instance).
        self._bound = forget_sets
        self._data: Dataset | None = None

    def describe_imported(self, name: str) -> str:
        return published_description(name)

    def with_forget_sets(self, forget_sets: tuple[ForgetSet, ...]) -> CIFAR10ResNet9:
        """A new instance bound to ``forget_sets`` (read from an imported store); this one,
        the registry's included, is left as it is."""
        bound = type(self)(tuple(forget_sets))
        bound._data = self._data
        return bound

    @property
    def forget_sets(self) -> tuple[ForgetSet, ...]:
        """Bound: the store's forget sets. Unbound: EasyDUB's ten published forget sets by name
        and kind, with *no indices* (``forget_set(name)`` refuses to hand those out)."""
        if self._bound is not None:
            return self._bound
        return tuple(
            ForgetSet(name=forget_set_name(i), kind=kind, indices=(), description=description)
            for i, (kind, description) in EASYDUB_FORGET_SETS.items()
        )

    def forget_set(self, name: str) -> ForgetSet:
        """The bound store's forget set ``name``; :class:`NotBuildable` when nothing is bound,
        because the indices exist only in an imported store."""
        if self._bound is None:
            raise NotBuildable(not_buildable_message(self.name))
        return super().forget_set(name)

    def build_model(self) -> nn.Module:
        return resnet9(num_classes=10, widths=self.widths)

    def load_data(self) -> Dataset:
        """CIFAR-10 train then test images from ``$PYTEST_UNLEARN_CIFAR10_NPZ``.

        Unbound, this refuses (:class:`NotBuildable`): the only caller that needs data without
        a store is a local build, which this benchmark cannot do.
        """
        if self._bound is None:
            raise NotBuildable(not_buildable_message(self.name))
        if self._data is None:
            self._data = self._load_cifar10()
        return self._data

    def _load_cifar10(self) -> Dataset:
        path = os.environ.get(CIFAR10_NPZ_ENV)
        if not path:
            raise CIFAR10Unavailable(
                f"{CIFAR10_NPZ_ENV} is not set, and nothing here downloads CIFAR-10: "
                f"{_how_to_provide(self.name)}"
            )
        x_train, y_train, x_test, y_test = load_cifar10(path, self.n_train, self.n_validation)
        n = self.n_train + self.n_validation
        return Dataset(
            inputs=torch.cat([x_train, x_test]),
            targets=torch.cat([y_train, y_test]),
            train_indices=torch.arange(self.n_train),
            validation_indices=torch.arange(self.n_train, n),
            num_classes=10,
        )

    def content_identity(self) -> dict[str, object]:
        """The data's identity only (CIFAR-10, split sizes, normalization).

        Unlike the default it hashes neither images (an importer has none) nor forget-set
        indices (they are the store's content, checked by the manifest's sha256), so an
        importer and an evaluator agree on the fingerprint without the data.
        """
        return {
            "data": {
                "dataset": "CIFAR-10, training images then test images, published order",
                "n_train": self.n_train,
                "n_validation": self.n_validation,
                "normalize": [CIFAR10_MEAN, CIFAR10_STD],
            },
        }
