"""What a benchmark is: data, architecture, training recipe and forget sets.

A benchmark is everything needed to (re)build its ensembles deterministically; its
:meth:`Benchmark.fingerprint` changes whenever anything that affects the ensembles changes,
which is how a cached store knows it is stale.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import nn

from ..contract import TrainingRecipe

ForgetSetKind = Literal["random", "subpopulation"]
#: Every :data:`ForgetSetKind`, for checking a kind read from a file.
FORGET_SET_KINDS: tuple[ForgetSetKind, ...] = get_args(ForgetSetKind)


class DataUnavailable(RuntimeError):
    """The benchmark's data is not on this machine (or is malformed); the message says how to
    provide it. The store layer reports it as a store problem, never as the method's."""


class NotBuildable(DataUnavailable):
    """The benchmark's ensembles can only be imported, and it is not bound to a store's forget
    sets (see :meth:`Benchmark.with_forget_sets`)."""


@dataclass(frozen=True)
class RemoteFile:
    """A file a benchmark's data comes from, published at ``url`` with a known checksum.

    Benchmarks never download: the store layer fetches it into the cache, verified against
    ``md5`` (the checksum its publisher gives), and hands the benchmark the local path
    (:meth:`Benchmark.with_data_files`).

    >>> RemoteFile("https://example.org/d.tar.gz", "d.tar.gz", "0" * 32).filename
    'd.tar.gz'
    """

    url: str
    filename: str
    md5: str
    #: Bytes, when known: a download that grows past it stops early.
    size: int | None = None


@dataclass(frozen=True)
class ForgetSet:
    """A set of training points to delete, labelled by how it was chosen.

    ``kind`` matters for reading verdicts: random forget sets are close to a negative
    control (do-nothing already looks like retraining), subpopulations are not.

    A *sequential* forget set arrives as several disjoint deletion requests: ``requests``
    holds them in order and ``indices`` is their union. After request ``k`` the model must
    look retrained without the union of requests ``1..k``. A plain forget set is one request.

    >>> fs = ForgetSet("seq", "random", (1, 2, 3, 4), requests=((1, 2), (3, 4)))
    >>> fs.sequential, fs.deleted_after(1)
    (True, (1, 2))
    """

    name: str
    kind: ForgetSetKind
    indices: tuple[int, ...]
    description: str = ""
    requests: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.requests:
            object.__setattr__(self, "requests", (tuple(self.indices),))
        flat = [i for request in self.requests for i in request]
        if len(set(flat)) != len(flat):
            raise ValueError(f"forget set {self.name!r}: its requests overlap")
        if sorted(flat) != sorted(self.indices):
            raise ValueError(f"forget set {self.name!r}: indices must be the union of requests")

    @property
    def sequential(self) -> bool:
        """Whether this forget set is a schedule of more than one request."""
        return len(self.requests) > 1

    def deleted_after(self, request: int) -> tuple[int, ...]:
        """Every index deleted once requests ``1..request`` (1-based) are served, sorted."""
        if not 1 <= request <= len(self.requests):
            raise ValueError(f"forget set {self.name!r} has no request {request}")
        return tuple(sorted(i for r in self.requests[:request] for i in r))


@dataclass(frozen=True)
class Dataset:
    """All labelled points of a benchmark and its fixed train/validation split.

    ``inputs`` and ``targets`` hold every point; the splits are index tensors into them.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    train_indices: torch.Tensor
    validation_indices: torch.Tensor
    num_classes: int

    def retain_after(self, deleted: Any) -> torch.Tensor:
        """The training points left once ``deleted`` (indices) are deleted, in order.

        >>> data = Dataset(torch.zeros(5, 1), torch.zeros(5), torch.arange(4), torch.tensor([4]), 2)
        >>> data.retain_after([1, 3]).tolist()
        [0, 2]
        """
        deleted = torch.as_tensor(deleted, dtype=torch.int64)
        return self.train_indices[~torch.isin(self.train_indices, deleted)]


class Benchmark(ABC):
    """A benchmark definition; subclasses fill in the data, the model and the forget sets.

    >>> from pytest_unlearn.benchmarks import get_benchmark
    >>> bench = get_benchmark("digits-mlp")
    >>> [fs.name for fs in bench.forget_sets]
    ['knn36', 'random36', 'seq3x12']
    """

    name: str
    description: str
    recipe: TrainingRecipe
    #: Bumped by hand when the code behind the recipe changes in a way the fields don't show.
    version: int = 1
    #: Marks its tests ``slow`` (deselect with ``-m "not slow"``): minutes to build or run.
    slow: bool = False
    #: Marks its tests ``gpu``: not practical on a CPU.
    gpu: bool = False
    #: The exact convex objective its models minimize, for white-box certified checks
    #: (``digits-logreg-perturbed``); ``None`` where models are trained by SGD.
    objective: Any = None
    #: Whether its ensembles can be built here (False: only imported from a published store).
    buildable: bool = True
    #: Whether its forget sets come from the store it is read from (an imported benchmark),
    #: so a store holding some of them runs tests for those only.
    forget_sets_from_store: bool = False

    @abstractmethod
    def load_data(self) -> Dataset:
        """Return the full data set and its train/validation split (deterministic)."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """Return a freshly initialized model (uses the global torch RNG)."""

    @property
    @abstractmethod
    def forget_sets(self) -> tuple[ForgetSet, ...]:
        """The forget sets, each a subset of the training split."""

    @property
    def declared_forget_sets(self) -> tuple[ForgetSet, ...]:
        """The forget sets' names, kinds and requests, for collecting tests and listing: a
        benchmark whose indices need downloaded data declares them without (``indices=()``),
        so that neither needs the data."""
        return self.forget_sets

    def with_forget_sets(
        self, forget_sets: tuple[ForgetSet, ...], recipe: Mapping[str, Any] | None = None
    ) -> Benchmark:
        """A new instance whose forget sets are ``forget_sets`` (a store's), trained with the
        store's ``recipe`` (its manifest's, when given). Only a benchmark with
        ``forget_sets_from_store`` takes them; the others define their own."""
        raise NotImplementedError(f"{self.name} defines its own forget sets")

    def remote_files(self) -> tuple[RemoteFile, ...]:
        """Files :meth:`load_data` needs from the internet (none for data bundled with a
        package); the store layer fetches them and calls :meth:`with_data_files`. Empty when
        the data is already on this machine (e.g. a local copy named by an environment
        variable)."""
        return ()

    def with_data_files(self, files: Mapping[str, Path]) -> Benchmark:
        """A new instance that reads its data from ``files`` (filename -> verified local path,
        one per :meth:`remote_files`)."""
        raise NotImplementedError(f"{self.name} needs no downloaded data")

    def describe_imported(self, name: str) -> str:
        """A description of an imported forget set called ``name`` (what its store's files
        cannot say)."""
        return "imported forget set"

    def forget_set(self, name: str) -> ForgetSet:
        for forget_set in self.forget_sets:
            if forget_set.name == name:
                return forget_set
        known = ", ".join(fs.name for fs in self.forget_sets)
        raise KeyError(f"benchmark {self.name!r} has no forget set {name!r} (known: {known})")

    def fingerprint(self) -> str:
        """A short hash of everything that determines the ensembles: name, version, recipe,
        architecture, and what :meth:`content_identity` says about data and forget sets."""
        with torch.random.fork_rng(devices=[]):
            architecture = repr(self.build_model())
        recipe = asdict(self.recipe)
        if recipe["loss_perturbation"] == 0.0:
            # Added after stores were published: leaving the default out keeps their hashes.
            del recipe["loss_perturbation"]
        payload = {
            "name": self.name,
            "version": self.version,
            "recipe": recipe,
            "model": architecture,
            **self.content_identity(),
        }
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def train_members(
        self,
        train_indices: torch.Tensor,
        seeds: list[int],
        *,
        device: torch.device | str = "cpu",
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Train one model per seed on ``train_indices``; return their stacked parameters.

        The default trains with the recipe's SGD, all models at once (``train_ensemble``); a
        benchmark whose models are defined otherwise (e.g. exact minimizers) overrides this.
        Model ``i`` depends only on ``seeds[i]``.
        """
        from ..training.ensemble_trainer import train_ensemble

        data = self.load_data()
        return train_ensemble(
            self.build_model,
            data.inputs,
            data.targets,
            train_indices,
            self.recipe,
            seeds,
            device=device,
            progress=progress,
        )

    def content_identity(self) -> dict[str, object]:
        """The data and split themselves (so a changed upstream data set invalidates a cached
        store too) and the forget sets; benchmarks without local data override this."""
        data = self.load_data()
        digest = hashlib.sha256()
        for tensor in (data.inputs, data.targets, data.train_indices, data.validation_indices):
            digest.update(tensor.contiguous().numpy().tobytes())
        return {
            "data": digest.hexdigest(),
            # Plain forget sets hash as before schedules existed, keeping their stores valid.
            "forget_sets": {
                fs.name: [list(r) for r in fs.requests] if fs.sequential else list(fs.indices)
                for fs in self.forget_sets
            },
        }
