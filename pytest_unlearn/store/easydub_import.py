"""Convert EasyDUB's published CIFAR-10 release into a ``cifar10-resnet9`` store.

The EasyDUB dataset (huggingface.co/datasets/easydub/EasyDUB-dataset) is laid out as below; the
paths are those its reference code reads (easydub/EasyDUB-code: ``easydub/data.py``,
``eval_pretrain.py``). ``Z`` is a forget set id (1..10), ``i`` a model id (0..199)::

    forget_sets/cifar10/forget_set_Z.npy                        int indices into the train set
    models/cifar10/pretrain/resnet9/id_i_epoch_23.pt            state_dict (torch pickle)
    margins/cifar10/pretrain/retain/resnet9/id_i_epoch_23.npy   (50000,) every training image
    margins/cifar10/pretrain/val/resnet9/id_i_epoch_23.npy      (10000,) every test image
    margins/cifar10/pretrain/forget_Z/resnet9/id_i_epoch_23.npy (|Z|,)   not read (redundant)
    margins/cifar10/oracle/forget_Z/retain/resnet9/id_i_epoch_23.npy (50000 - |Z|,)
    margins/cifar10/oracle/forget_Z/forget/resnet9/id_i_epoch_23.npy (|Z|,)
    margins/cifar10/oracle/forget_Z/val/resnet9/id_i_epoch_23.npy    (10000,)

Despite its name, the *pretrain* ``retain`` file covers all 50,000 training images; the
*oracle* ``retain`` file covers the training images outside forget set Z, in increasing index
order (EasyDUB's "retain masking": ``retain = train minus Z``), and the oracle ``forget`` file
covers Z in the order of ``forget_set_Z.npy``. The importer scatters them back into one row
per model over every point (train images, then test images), which is our store's layout.

Of the oracles, ids ``0..N-1`` become half A and ``N..2N-1`` half B, with
``N = min(models, pretrained available, oracles available // 2)``; pretrained ids
``0..N-1`` are kept. Checkpoints are read only with ``torch.load(weights_only=True)``, and
only on torch >= 2.6: before 2.6 that loader could still be made to run code
(CVE-2025-32434), so the importer refuses to run on an older torch.

Example::

    import_easydub(Path("EasyDUB-dataset"), Path("stores/easydub"), models=100)
    PosixPath('stores/easydub')
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..benchmarks.cifar10_resnet9 import EASYDUB_FORGET_SETS, CIFAR10ResNet9, forget_set_name
from ..benchmarks.spec import FORGET_SET_KINDS, ForgetSet, ForgetSetKind
from ..logs import Log, stderr_log
from .builder import check_ensemble_size, remove_stale_staging, save_tensors, staging_name
from .layout import PRETRAINED_MARGINS, PRETRAINED_WEIGHTS, forget_set_file, oracle_file
from .manifest import OutputRefused, StoreError, check_output_directory, seal_store

#: EasyDUB names every released file after the last epoch (24 epochs, counted from 0).
EPOCH_SUFFIX = "epoch_23"
# Older EasyDUB checkpoints carry a wrapper prefix; EasyDUB's own loader strips these two.
_WRAPPER_PREFIXES = ("model.", "module.")


#: The first torch whose ``torch.load(weights_only=True)`` is a real boundary: 2.6.0 fixed
#: CVE-2025-32434 (code execution through a checkpoint loaded with ``weights_only=True``).
SAFE_TORCH = (2, 6)


class EasyDUBImportError(StoreError):
    """The EasyDUB tree is missing a file or holds one that is not what the release ships."""


class EasyDUBOutputRefused(EasyDUBImportError, OutputRefused):
    """``--out`` holds something that is not a store; it is left alone."""


def check_torch_version(version: str | None = None) -> None:
    """Refuse (:class:`EasyDUBImportError`) a torch older than :data:`SAFE_TORCH`, whose
    ``weights_only=True`` loader does not keep a malicious checkpoint from running code.

    >>> check_torch_version("2.5.1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pytest_unlearn.store.easydub_import.EasyDUBImportError: torch 2.5.1 is too old to read ...
    """
    version = str(torch.__version__) if version is None else version
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None or (int(match.group(1)), int(match.group(2))) < SAFE_TORCH:
        floor = ".".join(map(str, SAFE_TORCH))
        raise EasyDUBImportError(
            f"torch {version} is too old to read EasyDUB's checkpoints safely: "
            f"torch.load(weights_only=True) is only a safe boundary from torch {floor} "
            f"(CVE-2025-32434); upgrade with: pip install 'torch>={floor}'"
        )


class _Tree:
    """Paths inside an EasyDUB dataset root (one place that knows the layout)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.margins = root / "margins" / "cifar10"

    def forget_set(self, z: int) -> Path:
        return self.root / "forget_sets" / "cifar10" / f"forget_set_{z}.npy"

    def checkpoint_dir(self) -> Path:
        return self.root / "models" / "cifar10" / "pretrain" / "resnet9"

    def checkpoint(self, i: int) -> Path:
        return self.checkpoint_dir() / f"id_{i}_{EPOCH_SUFFIX}.pt"

    def pretrain_margins(self, split: str, i: int) -> Path:
        return self.margins / "pretrain" / split / "resnet9" / f"id_{i}_{EPOCH_SUFFIX}.npy"

    def oracle_dir(self, z: int, split: str) -> Path:
        return self.margins / "oracle" / f"forget_{z}" / split / "resnet9"

    def oracle_margins(self, z: int, split: str, i: int) -> Path:
        return self.oracle_dir(z, split) / f"id_{i}_{EPOCH_SUFFIX}.npy"


def _count_ids(directory: Path, suffix: str, expected: str) -> int:
    """How many ``id_<i>_epoch_23<suffix>`` files ``directory`` holds (its model count)."""
    if not directory.is_dir():
        raise EasyDUBImportError(f"{directory}: missing directory; expected {expected}")
    pattern = re.compile(rf"id_\d+_{EPOCH_SUFFIX}{re.escape(suffix)}")
    return sum(1 for path in directory.iterdir() if pattern.fullmatch(path.name))


def _load_array(path: Path, expected: str) -> np.ndarray:
    """``np.load`` without pickles; one-line error naming ``path`` and what was expected."""
    if not path.is_file():
        raise EasyDUBImportError(f"{path}: missing; expected {expected}")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise EasyDUBImportError(
            f"{path}: not a readable .npy array ({error}); expected {expected}"
        ) from None
    if not isinstance(array, np.ndarray):  # an .npz archive renamed to .npy
        raise EasyDUBImportError(f"{path}: not a single .npy array; expected {expected}")
    return array


def _load_margins(path: Path, length: int, what: str) -> np.ndarray:
    """A float32 margins vector of ``length`` finite values."""
    expected = f"{length} float margins ({what})"
    array = _load_array(path, expected)
    if array.shape != (length,) or not np.issubdtype(array.dtype, np.floating):
        raise EasyDUBImportError(
            f"{path}: found {array.dtype} array of shape {array.shape}; expected {expected}"
        )
    # KLoM refuses non-finite margins later; better to refuse the file that holds them now.
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise EasyDUBImportError(f"{path}: {bad} non-finite margins; expected {expected}")
    return array.astype(np.float32, copy=False)


def _load_forget_indices(path: Path, n_train: int) -> np.ndarray:
    expected = f"distinct integer indices into the {n_train} training images"
    indices = _load_array(path, expected)
    if indices.ndim != 1 or len(indices) == 0 or not np.issubdtype(indices.dtype, np.integer):
        raise EasyDUBImportError(
            f"{path}: found {indices.dtype} array of shape {indices.shape}; expected {expected}"
        )
    indices = indices.astype(np.int64)
    if indices.min() < 0 or indices.max() >= n_train:
        raise EasyDUBImportError(
            f"{path}: indices range over [{indices.min()}, {indices.max()}]; expected {expected}"
        )
    if len(np.unique(indices)) != len(indices):
        raise EasyDUBImportError(f"{path}: repeated indices; expected {expected}")
    return indices


# Sentences of torch's refusal that tell the reader how to load the file anyway.
_UNSAFE_ADVICE = re.compile(
    r"weights_only`? (?:set to|=) ?`?False|weights_only=False|trust|safe_globals|allowlist"
    r"|Re-running|two options|do those steps",
    re.IGNORECASE,
)


def _torch_reason(error: Exception) -> str:
    """The one informative line of a torch.load error, naming the refused global.

    torch's text is long, multi-line, and says how to load the file anyway (with
    ``weights_only=False``, or by allowlisting the global): exactly what must never be done
    with a file nobody vouches for, so none of that is kept.
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    refused = re.search(r"GLOBAL ([\w.]+)", text)
    if refused:
        return f"{type(error).__name__}: refused global {refused.group(1)}"
    match = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\. |\n|$)", text, re.DOTALL)
    if match:
        reason = match.group(1)
    else:
        sentences = re.split(r"(?<=[.:])\s+|\n+", text)
        reason = " ".join(s for s in sentences if s.strip() and not _UNSAFE_ADVICE.search(s))
    reason = " ".join(reason.split())[:200]
    if _UNSAFE_ADVICE.search(reason):
        reason = ""
    return f"{type(error).__name__}: {reason}" if reason else type(error).__name__


def _load_checkpoint(path: Path, reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One checkpoint as a state_dict matching ``reference``'s keys and shapes.

    Only ``weights_only=True`` loading: a pickle that would build arbitrary objects (and so
    could run code) is refused by torch before anything of it executes.
    """
    if not path.is_file():
        raise EasyDUBImportError(f"{path}: missing; expected a ResNet-9 state_dict checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise EasyDUBImportError(
            f"{path}: refused by torch.load(weights_only=True) ({_torch_reason(error)}); "
            "expected a ResNet-9 state_dict of tensors (pickled objects are never loaded)"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise EasyDUBImportError(
            f"{path}: holds a {type(state).__name__}, not a dict of named tensors; expected a "
            "ResNet-9 state_dict"
        )
    for prefix in _WRAPPER_PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key.removeprefix(prefix): value for key, value in state.items()}
    missing = sorted(set(reference) - set(state))
    unexpected = sorted(set(state) - set(reference))
    if missing or unexpected:
        raise EasyDUBImportError(
            f"{path}: state_dict keys do not match EasyDUB's ResNet-9 (missing {missing[:4]}"
            f"{'...' if len(missing) > 4 else ''}, unexpected {unexpected[:4]}"
            f"{'...' if len(unexpected) > 4 else ''}); expected a ResNet-9 state_dict"
        )
    for key, tensor in reference.items():
        if state[key].shape != tensor.shape:
            raise EasyDUBImportError(
                f"{path}: {key} has shape {tuple(state[key].shape)}; expected "
                f"{tuple(tensor.shape)} (EasyDUB's ResNet-9)"
            )
    return state


def _choose_ensemble_size(
    models: int, pretrained: int, oracles: Mapping[int, int], log: Log
) -> int:
    """N = min(models, pretrained, oracles // 2); clamping is announced, N < 2 refused."""
    fewest = min(oracles, key=lambda z: oracles[z])
    n = min(models, pretrained, oracles[fewest] // 2)
    if n < 2:
        raise EasyDUBImportError(
            f"too few models to import: {pretrained} pretrained checkpoints and "
            f"{oracles[fewest]} oracles for forget set {fewest}; expected at least 2 pretrained "
            "and 4 oracles (two halves of 2)"
        )
    if n < models:
        log(
            f"pytest-unlearn: --models {models} clamped to {n}: the tree holds {pretrained} "
            f"pretrained models and {oracles[fewest]} oracles for forget set {fewest} "
            "(two halves of N each)"
        )
    return n


def _resolve_forget_sets(
    tree: _Tree, forget_ids: Sequence[int] | None, kinds: Mapping[int, str] | None
) -> dict[int, ForgetSetKind]:
    """The forget set ids to import, each with its kind (published default or ``kinds``)."""
    directory = tree.forget_set(0).parent
    if forget_ids is None:
        if not directory.is_dir():
            raise EasyDUBImportError(
                f"{directory}: missing directory; expected forget_set_<id>.npy files"
            )
        found = (re.fullmatch(r"forget_set_(\d+)\.npy", p.name) for p in directory.iterdir())
        forget_ids = sorted(int(m.group(1)) for m in found if m)
        if not forget_ids:
            raise EasyDUBImportError(
                f"{directory}: no forget_set_<id>.npy files; expected EasyDUB's forget sets"
            )
    labels: dict[int, str] = {z: kind for z, (kind, _) in EASYDUB_FORGET_SETS.items()}
    labels.update(kinds or {})
    resolved: dict[int, ForgetSetKind] = {}
    for z in sorted(dict.fromkeys(forget_ids)):
        kind = labels.get(z)
        if kind not in FORGET_SET_KINDS:
            raise EasyDUBImportError(
                f"forget set {z}: kind {kind!r} is not one of {', '.join(FORGET_SET_KINDS)}; "
                f"label it with --kinds {z}=random or --kinds {z}=subpopulation"
            )
        resolved[z] = kind  # type: ignore[assignment]  # checked just above
    return resolved


def _check_out(out: Path) -> None:
    """Refuse an ``out`` that exists and is no store (nor empty): it may be the user's."""
    try:
        check_output_directory(out)
    except OutputRefused as error:
        raise EasyDUBOutputRefused(str(error)) from None


def _prepare_out(out: Path, log: Log) -> Path:
    """The (new, empty) staging directory next to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out, log)
    staging = staging_name(out, "importing", hidden=True)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def import_easydub(
    source: Path | str,
    out: Path | str,
    *,
    models: int = 100,
    forget_ids: Sequence[int] | None = None,
    kinds: Mapping[int, str] | None = None,
    benchmark: CIFAR10ResNet9 | None = None,
    log: Log = stderr_log,
) -> Path:
    """Convert the EasyDUB dataset at ``source`` into the store directory ``out``.

    ``forget_ids`` picks EasyDUB forget sets (default: every ``forget_set_<id>.npy``);
    ``kinds`` labels ids as ``"random"`` or ``"subpopulation"`` over the published defaults
    (1-3 random, 4-10 subpopulation). ``models`` is N, clamped as the module docstring says.
    Everything is written into a staging directory and renamed onto ``out`` at the end, so a
    failed import leaves ``out`` as it was. Raises :class:`EasyDUBImportError` (one line,
    naming the file) for a tree that is not EasyDUB's.

    Example::

        import_easydub("EasyDUB-dataset", "stores/easydub", forget_ids=[1, 4])
        PosixPath('stores/easydub')
    """
    check_ensemble_size(models)
    check_torch_version()
    bench = (benchmark if benchmark is not None else CIFAR10ResNet9()).as_imported()
    tree, out = _Tree(Path(source)), Path(out)
    _check_out(out)
    if not tree.root.is_dir():
        raise EasyDUBImportError(f"{tree.root}: not a directory; expected EasyDUB's dataset root")
    n_train, n_val = bench.n_train, bench.n_validation
    chosen = _resolve_forget_sets(tree, forget_ids, kinds)
    forget = {z: _load_forget_indices(tree.forget_set(z), n_train) for z in chosen}
    pretrained = _count_ids(tree.checkpoint_dir(), ".pt", "the pretrained ResNet-9 checkpoints")
    oracles = {
        z: _count_ids(tree.oracle_dir(z, "retain"), ".npy", f"oracle margins for forget set {z}")
        for z in chosen
    }
    n = _choose_ensemble_size(models, pretrained, oracles, log)
    log(
        f"pytest-unlearn: importing EasyDUB {tree.root}: {n} pretrained, {n} + {n} oracles "
        f"for forget sets {', '.join(map(str, chosen))}"
    )

    try:
        staging = _prepare_out(out, log)
    except OSError as error:
        raise EasyDUBImportError(f"cannot write store {out}: {error.strerror or error}") from None
    try:
        _import_pretrained(tree, bench, n, staging)
        for z, indices in forget.items():
            _import_forget_set(tree, z, indices, n, n_train, n_val, staging)
            log(f"  forget set {z} ({chosen[z]}, {len(indices)} images): {2 * n} oracles")
        seal_store(
            staging,
            out,
            benchmark=bench.name,
            fingerprint=bench.fingerprint(),
            n_models=n,
            recipe=asdict(bench.recipe),
            forget_sets={forget_set_name(z): kind for z, kind in chosen.items()},
        )
    except OutputRefused as error:  # something not a store appeared at ``out`` meanwhile
        raise EasyDUBOutputRefused(str(error)) from None
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        raise EasyDUBImportError(
            f"cannot write store {out}: {error.strerror or error}{where}"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"pytest-unlearn: EasyDUB store written to {out}")
    return out


def _import_pretrained(tree: _Tree, bench: CIFAR10ResNet9, n: int, staging: Path) -> None:
    """Pretrained ids 0..n-1: stacked weights, and margins over train then validation."""
    with torch.random.fork_rng(devices=[]):
        reference = bench.build_model().state_dict()
    # Preallocated stacks, filled one checkpoint at a time: N = 100 ResNet-9s are ~0.9 GB of
    # weights, and holding N state_dicts next to their stack would double that.
    stacked = {k: torch.empty((n, *v.shape), dtype=v.dtype) for k, v in reference.items()}
    rows = np.empty((n, bench.n_train + bench.n_validation), dtype=np.float32)
    for i in range(n):
        state = _load_checkpoint(tree.checkpoint(i), reference)
        for key, stack in stacked.items():
            stack[i] = state[key].to(stack.dtype)
        rows[i, : bench.n_train] = _load_margins(
            tree.pretrain_margins("retain", i), bench.n_train, "one per training image"
        )
        rows[i, bench.n_train :] = _load_margins(
            tree.pretrain_margins("val", i), bench.n_validation, "one per test image"
        )
    save_tensors(stacked, staging / PRETRAINED_WEIGHTS)
    save_tensors({"margins": torch.from_numpy(rows)}, staging / PRETRAINED_MARGINS)


def _import_forget_set(
    tree: _Tree, z: int, forget: np.ndarray, n: int, n_train: int, n_val: int, staging: Path
) -> None:
    """Oracle ids 0..2n-1 of forget set ``z`` as rows over every point, split in two halves."""
    # EasyDUB's retain masking: the oracle "retain" file lists the training images outside Z
    # in increasing index order, so its columns are exactly these positions.
    retain = np.setdiff1d(np.arange(n_train), forget)
    rows = np.empty((2 * n, n_train + n_val), dtype=np.float32)
    for i in range(2 * n):
        rows[i, retain] = _load_margins(
            tree.oracle_margins(z, "retain", i), len(retain), f"training images outside set {z}"
        )
        rows[i, forget] = _load_margins(
            tree.oracle_margins(z, "forget", i), len(forget), f"set {z}, in its file order"
        )
        rows[i, n_train:] = _load_margins(
            tree.oracle_margins(z, "val", i), n_val, "one per test image"
        )
    # EasyDUB's forget sets are single requests (no sequential schedules); the kind does not
    # affect where files go, so any label will do for the layout functions.
    forget_set = ForgetSet(forget_set_name(z), "random", tuple(forget.tolist()))
    halves = {"half_a": torch.from_numpy(rows[:n]), "half_b": torch.from_numpy(rows[n:])}
    save_tensors(halves, staging / oracle_file(forget_set, 1))
    # Two tensors, not one shared: safetensors refuses to save aliased storage.
    indices = {"indices": torch.from_numpy(forget), "request_1": torch.from_numpy(forget.copy())}
    save_tensors(indices, staging / forget_set_file(forget_set))
