"""``cifar10-resnet9``: CIFAR-10 / ResNet-9, built on a GPU here or imported from EasyDUB.

EasyDUB (arXiv 2602.16400) publishes 200 pretrained ResNet-9s and, for each of its 10 forget
sets, 200 oracles retrained without it. This benchmark has two flavours, one architecture:

- **built here** (the registered instance): :data:`FAST_RECIPE`, EasyDUB's schedule and
  preprocessing in fewer steps, and forget sets chosen from the images like the digits
  benchmarks' (``knn500``, ``random500``, ``seq3x100``). ``python -m pytest_unlearn build
  cifar10-resnet9 --device cuda`` (or the first pytest run) trains it; see docs/cifar10.md.
- **imported**: EasyDUB's recipe (:data:`EASYDUB_RECIPE`) and its ten forget sets, whose
  indices live only in a store converted by ``python -m pytest_unlearn import-easydub``. The
  store layer hands them over (``pytest_unlearn.store.bind_forget_sets``, a new instance,
  :meth:`CIFAR10ResNet9.with_forget_sets`); the definition never reads a store.

The images come from the official binary distribution (no pickles, :mod:`.cifar10_data`),
which the store layer fetches into the cache, verified against its published md5
(:meth:`CIFAR10ResNet9.remote_files`); ``$PYTEST_UNLEARN_CIFAR10`` names a local copy instead,
for air-gapped machines. Nothing here downloads.

See docs/cifar10.md and docs/easydub.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..training.schedules import one_cycle_linear
from .cifar10_data import (
    CIFAR10_BINARY_MD5,
    CIFAR10_BINARY_NAME,
    CIFAR10_BINARY_URL,
    CIFAR10FormatError,
    read_cifar10,
)
from .forget_selection import atypical_neighbourhood, random_forget_set, sequential_neighbourhood
from .spec import (
    Benchmark,
    Dataset,
    DataUnavailable,
    ForgetSet,
    ForgetSetKind,
    NotBuildable,
    RemoteFile,
    TrainingRecipe,
)

#: The earlier name of :data:`CIFAR10_ENV` (an ``.npz`` only), still read.
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

    >>> EASYDUB_RECIPE.lr, EASYDUB_RECIPE.lr_schedule, EASYDUB_RECIPE.peak_epoch
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
#: checkpoints are named ``epoch_23``, counting from 0); imported stores are trained with it.
EASYDUB_RECIPE = EasyDUBRecipe(epochs=24, lr=0.4, batch_size=256, momentum=0.9, weight_decay=5e-4)


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


#: The recipe of a locally built store: EasyDUB's schedule, architecture and preprocessing in
#: fewer, larger steps (10 epochs of 512 images against 24 of 256: 4.8 times fewer images
#: seen, 9.6 times fewer optimizer steps), so a GPU builds the quick profile in minutes.
#: docs/cifar10.md sets its accuracy and KLoM floor against EasyDUB's.
FAST_RECIPE = EasyDUBRecipe(
    epochs=10, lr=0.4, batch_size=512, momentum=0.9, weight_decay=5e-4, peak_epoch=2
)

#: An environment variable naming a local CIFAR-10 copy, for machines that cannot download:
#: the binary archive (``cifar-10-binary.tar.gz``), its extracted directory, or an ``.npz``.
CIFAR10_ENV = "PYTEST_UNLEARN_CIFAR10"

#: The official binary distribution, fetched into the cache by the store layer.
CIFAR10_ARCHIVE = RemoteFile(
    url=CIFAR10_BINARY_URL, filename=CIFAR10_BINARY_NAME, md5=CIFAR10_BINARY_MD5
)


class CIFAR10Unavailable(DataUnavailable):
    """The CIFAR-10 images are not on this machine (or the local copy is malformed): a problem
    with the benchmark's data, reported like a store problem (one line), never as the method's."""


def _how_to_provide(name: str = "cifar10-resnet9") -> str:
    return (
        f"benchmark {name!r} fetches CIFAR-10 ({CIFAR10_BINARY_URL}) into the cache on first "
        f"use; on a machine without internet, set {CIFAR10_ENV} to a local copy of "
        f"{CIFAR10_BINARY_NAME} (or its extracted directory, or an .npz with arrays x_train, "
        "y_train, x_test, y_test)"
    )


def not_buildable_message(name: str) -> str:
    """Why EasyDUB's store of ``name`` cannot be built here, and what to do instead."""
    return (
        f"EasyDUB's {name!r} ensembles (its 10 published forget sets, 200 models each) can "
        "only be imported: convert EasyDUB's release once with `python -m pytest_unlearn "
        "import-easydub PATH/TO/EasyDUB-dataset --out STORE` and run pytest with "
        "--unlearn-store=STORE"
    )


def _normalized(images: np.ndarray) -> torch.Tensor:
    """uint8 (or float in [0, 1]) NCHW images, normalized as EasyDUB does (ToTensor, Normalize)."""
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    pixels = torch.from_numpy(np.ascontiguousarray(images)).float()
    if images.dtype == np.uint8:
        pixels = pixels / 255.0
    return (pixels - mean) / std


def load_cifar10(path: Path | str, n_train: int, n_test: int) -> tuple[torch.Tensor, ...]:
    """Read a local CIFAR-10 copy: images normalized as EasyDUB does, labels int64.

    ``path`` is the binary distribution (``cifar-10-binary.tar.gz`` or its extracted
    directory, read by :func:`.cifar10_data.read_cifar10`) or an ``.npz`` with ``x_train``,
    ``y_train``, ``x_test``, ``y_test`` (images ``uint8`` NHWC, what torchvision's ``.data``
    holds, or NCHW; labels ``(n,)`` or ``(n, 1)``). Returns ``(x_train, y_train, x_test,
    y_test)``, the images float32 NCHW.

    Example::

        x_train, y_train, x_test, y_test = load_cifar10(
            "cifar-10-binary.tar.gz", 50_000, 10_000)
    """
    path = Path(path)
    if path.is_dir() or not path.name.endswith(".npz"):
        try:
            parsed = read_cifar10(path)
        except CIFAR10FormatError as error:
            raise CIFAR10Unavailable(f"{error}; {_how_to_provide()}") from None
        arrays = {
            "x_train": parsed.x_train,
            "y_train": parsed.y_train,
            "x_test": parsed.x_test,
            "y_test": parsed.y_test,
        }
    else:
        arrays = _read_npz(path)
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
        result += [_normalized(images), torch.from_numpy(labels.astype(np.int64))]
    return tuple(result)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        # allow_pickle=False: an .npz can hold pickled objects, and those would run code.
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except FileNotFoundError:
        raise CIFAR10Unavailable(f"{path}: no such file; {_how_to_provide()}") from None
    except KeyError as error:
        raise CIFAR10Unavailable(
            f"{path}: missing array {error.args[0]!r}; expected x_train, y_train, x_test, y_test"
        ) from None
    except (OSError, ValueError) as error:
        reason = " ".join(str(error).split())[:200]
        raise CIFAR10Unavailable(
            f"{path}: not a readable numpy .npz ({reason}); {_how_to_provide()}"
        ) from None


def _local_copy() -> Path | None:
    """The local CIFAR-10 copy named by the environment (the legacy ``.npz`` variable too)."""
    for variable in (CIFAR10_ENV, CIFAR10_NPZ_ENV):
        value = os.environ.get(variable)
        if value:
            return Path(value)
    return None


class CIFAR10ResNet9(Benchmark):
    """CIFAR-10 / ResNet-9: built here with :data:`FAST_RECIPE` and its own forget sets, or
    read from an imported EasyDUB store (EasyDUB's recipe and forget sets).

    Built locally, its forget sets are chosen from the images as for the digits benchmarks:
    ``knn{S}`` (the ``S`` training images nearest, in pixel space, to the training image
    farthest from its class mean), ``random{S}``, and ``seq{R}x{Q}`` (``R`` requests of ``Q``
    images, the rings of another atypical image's neighbourhood, nearest first). Without its
    data it still declares them (names, kinds, requests; :attr:`declared_forget_sets`), so
    collection needs no download.

    >>> bench = CIFAR10ResNet9()
    >>> [fs.name for fs in bench.declared_forget_sets], bench.recipe.epochs
    (['knn500', 'random500', 'seq3x100'], 10)
    >>> bound = bench.with_forget_sets((ForgetSet("set1", "random", (1067, 2713, 4128)),))
    >>> bound.forget_set("set1").indices, bound.recipe.epochs, bench is not bound
    ((1067, 2713, 4128), 24, True)
    """

    name = "cifar10-resnet9"
    description = (
        "CIFAR-10, ResNet-9, 50000 train / 10000 validation (built on a GPU, or imported "
        "from EasyDUB)"
    )
    recipe: TrainingRecipe = FAST_RECIPE
    version = 1
    forget_sets_from_store: ClassVar[bool] = True
    # Every method run pushes 60,000 CIFAR-10 images through N ResNet-9s: GPU work, and slow.
    slow = True
    gpu = True
    #: Points of the data set: CIFAR-10's training images, then its test images (EasyDUB's
    #: validation split), each in the published order.
    n_train: ClassVar[int] = 50_000
    n_validation: ClassVar[int] = 10_000
    widths: ClassVar[tuple[int, int, int, int]] = RESNET9_WIDTHS
    #: Where the images come from (a test points this at a small archive on 127.0.0.1).
    archive: ClassVar[RemoteFile] = CIFAR10_ARCHIVE
    #: Sizes of the built forget sets: ``knn``/``random`` size, and (requests, request size).
    forget_size: ClassVar[int] = 500
    sequential_requests: ClassVar[tuple[int, int]] = (3, 100)
    #: Members trained at once on one device (vmapped); ``None``: all of an ensemble.
    members_at_once: ClassVar[int | None] = 25
    #: Images whose margins are computed at once per member chunk, to bound activations.
    eval_points_at_once: ClassVar[int] = 2_000
    _RANDOM_SEED: ClassVar[int] = 500

    def __init__(
        self,
        forget_sets: tuple[ForgetSet, ...] | None = None,
        *,
        recipe: TrainingRecipe | None = None,
        data_file: Path | None = None,
    ) -> None:
        #: A store's forget sets; None while unbound (then the built ones apply).
        self._bound = forget_sets
        if recipe is not None:
            self.recipe = recipe
        #: The verified archive the store layer fetched; None: a local copy or nothing yet.
        self._data_file = data_file
        self._data: Dataset | None = None
        self._built: tuple[ForgetSet, ...] | None = None

    # -- flavours ---------------------------------------------------------------------------

    @property
    def imported(self) -> bool:
        """Whether this instance describes EasyDUB's published models (its recipe)."""
        return asdict(self.recipe) == asdict(EASYDUB_RECIPE)

    @property
    def buildable(self) -> bool:  # type: ignore[override]
        """Buildable unless it describes EasyDUB's release (only importable)."""
        return not self.imported

    def as_imported(self) -> CIFAR10ResNet9:
        """This benchmark as EasyDUB trained it: what ``import-easydub`` writes stores for."""
        return self._copy(forget_sets=self._bound, recipe=EASYDUB_RECIPE)

    def _copy(
        self, forget_sets: tuple[ForgetSet, ...] | None, recipe: TrainingRecipe
    ) -> CIFAR10ResNet9:
        copy = type(self)(forget_sets, recipe=recipe, data_file=self._data_file)
        copy._data = self._data
        return copy

    def with_forget_sets(
        self, forget_sets: tuple[ForgetSet, ...], recipe: Mapping[str, Any] | None = None
    ) -> CIFAR10ResNet9:
        """A new instance bound to ``forget_sets`` (read from a store) and to the recipe its
        manifest names (EasyDUB's when none is given); this one, the registry's included, is
        left as it is. ``DataUnavailable`` for a recipe this version does not know."""
        chosen = EASYDUB_RECIPE if recipe is None else self._known_recipe(recipe)
        return self._copy(forget_sets=tuple(forget_sets), recipe=chosen)

    def _known_recipe(self, recipe: Mapping[str, Any]) -> TrainingRecipe:
        wanted = json.loads(json.dumps(dict(recipe)))
        for known in (type(self).recipe, EASYDUB_RECIPE):
            if json.loads(json.dumps(asdict(known))) == wanted:
                return known
        raise DataUnavailable(
            f"the store's recipe of {self.name} is neither EasyDUB's nor this version's "
            f"({json.dumps(wanted, sort_keys=True)[:200]})"
        )

    def describe_imported(self, name: str) -> str:
        return published_description(name) if self.imported else "forget set of a built store"

    # -- data -------------------------------------------------------------------------------

    def remote_files(self) -> tuple[RemoteFile, ...]:
        """The CIFAR-10 archive, unless fetched already or a local copy is named."""
        if self._data_file is not None or _local_copy() is not None:
            return ()
        return (self.archive,)

    def with_data_files(self, files: Mapping[str, Path]) -> CIFAR10ResNet9:
        """A new instance reading the fetched archive ``files[archive.filename]``."""
        copy = type(self)(self._bound, recipe=self.recipe, data_file=files[self.archive.filename])
        return copy

    def load_data(self) -> Dataset:
        """CIFAR-10 training then test images: from the fetched archive, or the local copy
        named by ``$PYTEST_UNLEARN_CIFAR10``; :class:`CIFAR10Unavailable` (saying how to
        provide it) when neither is there."""
        if self._data is None:
            path = self._data_file or _local_copy()
            if path is None:
                raise CIFAR10Unavailable(
                    f"the CIFAR-10 images are not fetched yet: {_how_to_provide(self.name)}"
                )
            x_train, y_train, x_test, y_test = load_cifar10(path, self.n_train, self.n_validation)
            n = self.n_train + self.n_validation
            self._data = Dataset(
                inputs=torch.cat([x_train, x_test]),
                targets=torch.cat([y_train, y_test]),
                train_indices=torch.arange(self.n_train),
                validation_indices=torch.arange(self.n_train, n),
                num_classes=10,
            )
        return self._data

    # -- forget sets ------------------------------------------------------------------------

    @property
    def declared_forget_sets(self) -> tuple[ForgetSet, ...]:
        """Names, kinds and requests without indices (no data needed): bound, the store's;
        imported and unbound, EasyDUB's ten; otherwise the built ones."""
        if self._bound is not None:
            return self._bound
        if self.imported:
            return tuple(
                ForgetSet(name=forget_set_name(i), kind=kind, indices=(), description=text)
                for i, (kind, text) in EASYDUB_FORGET_SETS.items()
            )
        size, (requests, request_size) = self.forget_size, self.sequential_requests
        return (
            ForgetSet(f"knn{size}", "subpopulation", ()),
            ForgetSet(f"random{size}", "random", ()),
            ForgetSet(
                f"seq{requests}x{request_size}", "subpopulation", (), requests=((),) * requests
            ),
        )

    @property
    def forget_sets(self) -> tuple[ForgetSet, ...]:
        """Bound: the store's forget sets. Otherwise the built ones, chosen from the images
        (which are loaded for it); EasyDUB's own indices exist only in an imported store."""
        if self._bound is not None:
            return self._bound
        if self.imported:
            raise NotBuildable(not_buildable_message(self.name))
        if self._built is None:
            data = self.load_data()
            size, (requests, request_size) = self.forget_size, self.sequential_requests
            knn, nearest_first = atypical_neighbourhood(data, size, "image")
            self._built = (
                knn,
                random_forget_set(data, size, self._RANDOM_SEED, "image"),
                sequential_neighbourhood(data, nearest_first, requests, request_size, "image"),
            )
        return self._built

    # -- models -----------------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        return resnet9(num_classes=10, widths=self.widths)

    def train_members(
        self,
        train_indices: torch.Tensor,
        seeds: list[int],
        *,
        device: torch.device | str = "cpu",
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The recipe's one-cycle schedule, ``members_at_once`` members vmapped together,
        bf16 autocast on a GPU (float32 on the CPU, where bf16 is slow)."""
        from ..training.ensemble_trainer import train_ensemble

        recipe = self.recipe
        assert isinstance(recipe, EasyDUBRecipe)
        device = torch.device(device)
        data = self.load_data()
        steps_per_epoch = -(-len(train_indices) // recipe.batch_size)

        def learning_rate(step: int, total_steps: int) -> float:
            return one_cycle_linear(
                step,
                total_steps,
                peak_lr=recipe.lr,
                peak_step=recipe.peak_epoch * steps_per_epoch,
                initial_divisor=recipe.initial_lr_divisor,
                final_divisor=recipe.initial_lr_divisor * recipe.final_lr_divisor,
            )

        bf16 = device.type == "cuda" and recipe.precision == "bf16_autocast"
        return train_ensemble(
            self.build_model,
            data.inputs,
            data.targets,
            train_indices,
            recipe,
            seeds,
            device=device,
            progress=progress,
            engine="vmap",
            learning_rate=learning_rate,
            autocast=torch.bfloat16 if bf16 else None,
            members_at_once=self.members_at_once,
        )

    def content_identity(self) -> dict[str, object]:
        """The data's identity only, no images (an importer has none): CIFAR-10, split sizes,
        normalization; a built store adds the archive's checksum and how its forget sets are
        chosen. Imported forget-set indices are the store's content (the manifest's sha256)."""
        identity: dict[str, object] = {
            "data": {
                "dataset": "CIFAR-10, training images then test images, published order",
                "n_train": self.n_train,
                "n_validation": self.n_validation,
                "normalize": [CIFAR10_MEAN, CIFAR10_STD],
            },
        }
        if not self.imported:
            identity["archive_md5"] = self.archive.md5
            identity["forget_sets"] = {
                "rule": "knn/random/sequential neighbourhood (forget_selection), version 1",
                "forget_size": self.forget_size,
                "sequential_requests": list(self.sequential_requests),
                "random_seed": self._RANDOM_SEED,
            }
        return identity
