"""``import-easydub``: EasyDUB's published tree becomes a verified ``cifar10-resnet9`` store.

Every test builds a miniature EasyDUB tree in exactly the published layout (see
``pytest_unlearn/store/easydub_import.py``): 6 pretrained models, 8 oracles per forget set,
50 training and 20 validation points, two forget sets, and ResNet-9 checkpoints with EasyDUB's
state_dict keys but tiny widths. Margins encode (forget set, model id, point), so a value in
the store tells exactly which file and position it came from.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import output
from safetensors.torch import load_file

from pytest_unlearn.benchmarks.cifar10_resnet9 import (
    CIFAR10_ENV,
    CIFAR10_NPZ_ENV,
    CIFAR10ResNet9,
    CIFAR10Unavailable,
    NotBuildable,
    resnet9,
)
from pytest_unlearn.store import StoreError, bind_forget_sets, read_ensembles
from pytest_unlearn.store import easydub_import as easydub_module
from pytest_unlearn.store.easydub_import import EasyDUBImportError, import_easydub
from pytest_unlearn.store.manifest import MANIFEST_NAME, read_manifest
from pytest_unlearn.store.reader import verify_directory

N_PRETRAINED = 6
N_ORACLES = 8
N_TRAIN = 50
N_VAL = 20
# Unsorted on purpose: the forget file's order is the order of the oracle "forget" margins.
FORGET_SETS = {1: [7, 3, 41], 4: [12, 30, 2, 11, 10]}


class TinyEasyDUB(CIFAR10ResNet9):
    """The cifar10-resnet9 definition at miniature size: same keys, tiny widths and splits."""

    name = "cifar10-resnet9-tiny"
    n_train = N_TRAIN
    n_validation = N_VAL
    widths = (2, 4, 4, 2)


def oracle_value(z: int, model: int, point: np.ndarray) -> np.ndarray:
    """What the miniature tree stores as oracle ``model``'s margins on ``point`` (set ``z``)."""
    return 100_000.0 * z + 1_000.0 * model + point


def pretrain_value(model: int, point: np.ndarray) -> np.ndarray:
    return 1_000.0 * model + point


def _save_npy(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, values)


def write_easydub_tree(
    root: Path,
    *,
    n_train: int = N_TRAIN,
    n_val: int = N_VAL,
    n_pretrained: int = N_PRETRAINED,
    n_oracles: int = N_ORACLES,
    forget_sets: dict[int, list[int]] | None = None,
    build_model: Callable[[], torch.nn.Module] | None = None,
) -> Path:
    """Write an EasyDUB dataset tree, in the published layout, under ``root``."""
    forget_sets = FORGET_SETS if forget_sets is None else forget_sets
    build_model = build_model or TinyEasyDUB().build_model
    margins = root / "margins" / "cifar10"
    suffix = "epoch_23"
    for z, indices in forget_sets.items():
        _save_npy(root / "forget_sets" / "cifar10" / f"forget_set_{z}.npy", np.array(indices))
        retain = np.setdiff1d(np.arange(n_train), indices)
        for i in range(n_oracles):
            base = margins / "oracle" / f"forget_{z}"
            for split, points in (
                ("retain", retain),
                ("forget", np.array(indices)),
                ("val", np.arange(n_train, n_train + n_val)),
            ):
                values = oracle_value(z, i, points).astype(np.float32)
                _save_npy(base / split / "resnet9" / f"id_{i}_{suffix}.npy", values)
    for i in range(n_pretrained):
        train = pretrain_value(i, np.arange(n_train)).astype(np.float32)
        val = pretrain_value(i, np.arange(n_train, n_train + n_val)).astype(np.float32)
        _save_npy(margins / "pretrain" / "retain" / "resnet9" / f"id_{i}_{suffix}.npy", train)
        _save_npy(margins / "pretrain" / "val" / "resnet9" / f"id_{i}_{suffix}.npy", val)
        for z, indices in forget_sets.items():
            # Published but redundant (the train margins at the forget indices); not read.
            path = margins / "pretrain" / f"forget_{z}" / "resnet9" / f"id_{i}_{suffix}.npy"
            _save_npy(path, train[indices])
        torch.manual_seed(i)
        model = build_model()
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                # Non-trivial running statistics, so the buffers are checked too.
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(i + 1)
        checkpoint = root / "models" / "cifar10" / "pretrain" / "resnet9" / f"id_{i}_{suffix}.pt"
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), checkpoint)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_easydub_tree(tmp_path / "EasyDUB-dataset")


def _import(tree: Path, out: Path, models: int = 3, **kwargs) -> tuple[Path, list[str]]:
    messages: list[str] = []
    store = import_easydub(
        tree, out, models=models, benchmark=TinyEasyDUB(), log=messages.append, **kwargs
    )
    return store, messages


@pytest.fixture
def store(tree: Path, tmp_path: Path) -> Path:
    return _import(tree, tmp_path / "store")[0]


@pytest.fixture
def cifar_npz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local CIFAR-10 copy at the miniature size, named by the environment variable."""
    rng = np.random.default_rng(0)
    npz = tmp_path / "cifar10.npz"
    np.savez(
        npz,
        x_train=rng.integers(0, 256, (N_TRAIN, 32, 32, 3), dtype=np.uint8),
        y_train=rng.integers(0, 10, (N_TRAIN, 1)),
        x_test=rng.integers(0, 256, (N_VAL, 32, 32, 3), dtype=np.uint8),
        y_test=rng.integers(0, 10, N_VAL),
    )
    monkeypatch.setenv(CIFAR10_NPZ_ENV, str(npz))
    return npz


def test_imported_store_verifies_against_its_manifest(store: Path) -> None:
    assert verify_directory(store) == []
    manifest = read_manifest(store)
    assert (manifest.benchmark, manifest.n_models) == ("cifar10-resnet9-tiny", 3)
    assert manifest.fingerprint == TinyEasyDUB().as_imported().fingerprint()


def test_oracle_halves_are_the_first_n_and_next_n_oracles(store: Path) -> None:
    points = np.arange(N_TRAIN + N_VAL)
    for z in FORGET_SETS:
        halves = load_file(str(store / "oracles" / f"set{z}.safetensors"))
        for half, first_id in (("half_a", 0), ("half_b", 3)):
            expected = np.stack([oracle_value(z, first_id + m, points) for m in range(3)])
            np.testing.assert_array_equal(halves[half].numpy(), expected)


def test_forget_indices_are_preserved_in_file_order(store: Path) -> None:
    for z, indices in FORGET_SETS.items():
        stored = load_file(str(store / "forget_sets" / f"set{z}.safetensors"))
        assert stored["indices"].dtype == torch.int64
        assert stored["indices"].tolist() == indices
        assert stored["request_1"].tolist() == indices  # one request: EasyDUB is not sequential


def test_pretrained_weights_stack_the_checkpoints_in_id_order(tree: Path, store: Path) -> None:
    stacked = load_file(str(store / "pretrained" / "weights.safetensors"))
    checkpoints = [
        torch.load(
            tree / "models" / "cifar10" / "pretrain" / "resnet9" / f"id_{i}_epoch_23.pt",
            weights_only=True,
        )
        for i in range(3)
    ]
    assert set(stacked) == set(checkpoints[0])
    for key, stack in stacked.items():
        torch.testing.assert_close(stack, torch.stack([c[key] for c in checkpoints]))


def test_pretrained_margins_are_train_then_validation_points(store: Path) -> None:
    margins = load_file(str(store / "pretrained" / "margins.safetensors"))["margins"]
    points = np.arange(N_TRAIN + N_VAL)
    expected = np.stack([pretrain_value(i, points) for i in range(3)])
    np.testing.assert_array_equal(margins.numpy(), expected)


def test_retain_columns_hold_easydubs_masked_retain_margins(tree: Path, store: Path) -> None:
    """Our evaluation's retain split (train minus forget) selects exactly EasyDUB's oracle
    "retain" files, and the forget split exactly its "forget" files."""
    bench = bind_forget_sets(TinyEasyDUB(), store)
    for z in FORGET_SETS:
        forget = torch.tensor(bench.forget_set(f"set{z}").indices)
        train = torch.arange(N_TRAIN)
        retain = train[~torch.isin(train, forget)]  # as the evaluator computes it
        half_a = load_file(str(store / "oracles" / f"set{z}.safetensors"))["half_a"]
        oracle_dir = tree / "margins" / "cifar10" / "oracle" / f"forget_{z}"
        for split, columns in (("retain", retain), ("forget", forget)):
            published = np.stack(
                [np.load(oracle_dir / split / "resnet9" / f"id_{i}_epoch_23.npy") for i in range(3)]
            )
            np.testing.assert_array_equal(half_a[:, columns].numpy(), published)


class _RunsCodeWhenUnpickled:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for any code a pickle may run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_pickled_object_checkpoint_is_refused_without_running_it(
    tree: Path, tmp_path: Path
) -> None:
    # Control: the payload is live, full unpickling does run it.
    control = tmp_path / "control-ran"
    torch.save(_RunsCodeWhenUnpickled(control), tmp_path / "control.pt")
    torch.load(tmp_path / "control.pt", weights_only=False).close()
    assert control.exists()
    marker = tmp_path / "code-ran"
    checkpoint = tree / "models" / "cifar10" / "pretrain" / "resnet9" / "id_1_epoch_23.pt"
    torch.save(_RunsCodeWhenUnpickled(marker), checkpoint)
    assert not marker.exists()
    with pytest.raises(EasyDUBImportError) as error:
        _import(tree, tmp_path / "store")
    message = str(error.value)
    assert str(checkpoint) in message
    assert "weights_only=True" in message
    assert not marker.exists()
    assert not (tmp_path / "store").exists()


UNSAFE_ADVICE = ("weights_only` set to `False", "weights_only=False", "safe_globals", "trust")


def test_refused_pickle_names_the_global_and_not_how_to_load_it_anyway(
    tree: Path, tmp_path: Path
) -> None:
    checkpoint = tree / "models" / "cifar10" / "pretrain" / "resnet9" / "id_1_epoch_23.pt"
    torch.save(_RunsCodeWhenUnpickled(tmp_path / "code-ran"), checkpoint)
    with pytest.raises(EasyDUBImportError) as error:
        _import(tree, tmp_path / "store")
    message = str(error.value)
    assert "refused global io.open" in message
    assert "\n" not in message
    assert not [advice for advice in UNSAFE_ADVICE if advice in message]


def test_a_refusal_worded_without_the_usual_marker_keeps_none_of_the_advice(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch words its refusal differently across versions; whatever the wording, the advice
    to load the file anyway is never passed on."""
    text = (
        "Weights only load failed. This file can still be loaded, to do so you have two "
        "options, \x1b[1mdo those steps only if you trust the source of the checkpoint\x1b[0m."
        " \n\t(1) Re-running `torch.load` with `weights_only` set to `False` will likely "
        "succeed, but it can result in arbitrary code execution.\n\tUnsupported operand 149"
    )

    def refuse(*args: object, **kwargs: object) -> None:
        raise pickle.UnpicklingError(text)

    monkeypatch.setattr(easydub_module.torch, "load", refuse)
    with pytest.raises(EasyDUBImportError) as error:
        _import(tree, tmp_path / "store")
    message = str(error.value)
    assert "Unsupported operand 149" in message
    assert "can still be loaded" not in message
    assert not [advice for advice in UNSAFE_ADVICE if advice in message]


def test_the_importer_refuses_a_torch_older_than_2_6(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(easydub_module.torch, "__version__", "2.5.1+cpu")
    with pytest.raises(EasyDUBImportError) as error:
        _import(tree, tmp_path / "store")
    message = str(error.value)
    assert message.startswith("torch 2.5.1+cpu is too old to read EasyDUB's checkpoints safely")
    assert "CVE-2025-32434" in message and "pip install 'torch>=2.6'" in message
    assert not (tmp_path / "store").exists()


def test_the_dependency_floor_is_the_first_safe_torch() -> None:
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert '"torch>=2.6",' in pyproject


def test_missing_file_is_one_error_naming_it(tree: Path, tmp_path: Path) -> None:
    missing = tree / "margins" / "cifar10" / "oracle" / "forget_4" / "val" / "resnet9"
    missing = missing / "id_2_epoch_23.npy"
    missing.unlink()
    with pytest.raises(EasyDUBImportError) as error:
        _import(tree, tmp_path / "store")
    message = str(error.value)
    assert message.startswith(f"{missing}: missing; expected 20 float margins")
    assert "\n" not in message


def test_models_beyond_what_exists_are_clamped_to_half_the_oracles(
    tree: Path, tmp_path: Path
) -> None:
    store, messages = _import(tree, tmp_path / "store", models=50)
    assert read_manifest(store).n_models == N_ORACLES // 2
    halves = load_file(str(store / "oracles" / "set1.safetensors"))
    assert halves["half_a"].shape == halves["half_b"].shape == (4, N_TRAIN + N_VAL)
    assert any("--models 50 clamped to 4" in message for message in messages)


def test_forget_sets_are_labelled_with_the_published_kinds(store: Path) -> None:
    assert read_manifest(store).forget_sets == {"set1": "random", "set4": "subpopulation"}


def test_kinds_argument_overrides_the_published_label(tree: Path, tmp_path: Path) -> None:
    store, _ = _import(tree, tmp_path / "store", forget_ids=[4], kinds={4: "random"})
    assert read_manifest(store).forget_sets == {"set4": "random"}


def test_forget_set_without_a_known_kind_is_refused(tmp_path: Path) -> None:
    tree = write_easydub_tree(tmp_path / "tree", forget_sets={11: [1, 2]}, n_pretrained=2)
    with pytest.raises(EasyDUBImportError, match=r"forget set 11: .*--kinds 11=random"):
        _import(tree, tmp_path / "store")


def test_checkpoint_with_foreign_keys_is_refused(tree: Path, tmp_path: Path) -> None:
    checkpoint = tree / "models" / "cifar10" / "pretrain" / "resnet9" / "id_0_epoch_23.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), checkpoint)
    with pytest.raises(EasyDUBImportError, match="keys do not match EasyDUB's ResNet-9"):
        _import(tree, tmp_path / "store")


def test_wrapper_prefix_of_older_checkpoints_is_stripped(tree: Path, tmp_path: Path) -> None:
    checkpoint = tree / "models" / "cifar10" / "pretrain" / "resnet9" / "id_0_epoch_23.pt"
    state = torch.load(checkpoint, weights_only=True)
    torch.save({f"module.{key}": value for key, value in state.items()}, checkpoint)
    store, _ = _import(tree, tmp_path / "store")
    stacked = load_file(str(store / "pretrained" / "weights.safetensors"))
    torch.testing.assert_close(stacked["9.weight"][0], state["9.weight"])


def test_failed_import_leaves_the_previous_store_intact(
    tree: Path, store: Path, tmp_path: Path
) -> None:
    (tree / "margins" / "cifar10" / "pretrain" / "val" / "resnet9" / "id_0_epoch_23.npy").unlink()
    with pytest.raises(EasyDUBImportError):
        _import(tree, store)
    assert verify_directory(store) == []
    assert [p.name for p in tmp_path.iterdir() if "importing" in p.name] == []


def test_directory_that_is_not_a_store_is_not_replaced(tree: Path, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(EasyDUBImportError, match="not a store"):
        _import(tree, precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_stale_staging_of_a_killed_import_is_removed(tree: Path, tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    stale = tmp_path / f".store.importing-{child.pid}"
    stale.mkdir()
    (stale / "half.safetensors").write_bytes(b"x")
    _import(tree, tmp_path / "store")
    assert not stale.exists()


def test_imported_files_are_readable_like_the_manifest(tree: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store, _ = _import(tree, tmp_path / "store")
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in store.rglob("*") if p.is_file()}
    assert modes == {0o644}


def test_a_subset_of_forget_sets_is_all_the_store_says_it_holds(
    tree: Path, tmp_path: Path, cifar_npz: Path
) -> None:
    from pytest_unlearn.store.reader import stored_forget_sets

    store, _ = _import(tree, tmp_path / "store", forget_ids=[4])
    assert stored_forget_sets(store) == ("set4",)
    bench = bind_forget_sets(TinyEasyDUB(), store)
    assert list(read_ensembles(bench, store, 3).oracles) == [("set4", 1)]


def test_a_forget_set_beyond_the_published_ten_is_a_stored_forget_set(tmp_path: Path) -> None:
    from pytest_unlearn.store.reader import stored_forget_sets

    tree = write_easydub_tree(tmp_path / "tree", forget_sets={11: [1, 2]}, n_pretrained=2)
    store, _ = _import(tree, tmp_path / "store", models=2, kinds={11: "random"})
    assert stored_forget_sets(store) == ("set11",)
    assert verify_directory(store) == []


def test_bound_benchmark_reads_the_imported_store_as_ensembles(
    tree: Path, store: Path, cifar_npz: Path
) -> None:
    bench = bind_forget_sets(TinyEasyDUB(), store)
    ensembles = read_ensembles(bench, store, 3)
    assert [fs.name for fs in bench.forget_sets] == ["set1", "set4"]
    checkpoint = tree / "models" / "cifar10" / "pretrain" / "resnet9" / "id_2_epoch_23.pt"
    expected = torch.load(checkpoint, weights_only=True)
    member = ensembles.member(2).state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(member[key], value)


def test_easydubs_flavour_unbound_refuses_forget_sets_and_says_to_import() -> None:
    bench = CIFAR10ResNet9().as_imported()
    with pytest.raises(NotBuildable, match=r"import-easydub.*--unlearn-store"):
        bench.forget_set("set1")
    assert [fs.name for fs in bench.declared_forget_sets][:2] == ["set1", "set2"]


def test_load_data_without_local_cifar10_names_the_variable(store: Path) -> None:
    with pytest.raises(CIFAR10Unavailable, match=CIFAR10_ENV):
        bind_forget_sets(TinyEasyDUB(), store).load_data()


def test_a_missing_cifar10_file_is_one_line_naming_it_and_how_to_provide_it(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "cifar10.npz"
    monkeypatch.setenv(CIFAR10_NPZ_ENV, str(missing))
    with pytest.raises(CIFAR10Unavailable) as error:
        bind_forget_sets(TinyEasyDUB(), store).load_data()
    message = str(error.value)
    assert message.startswith(f"{missing}: no such file")
    assert CIFAR10_ENV in message and "x_train, y_train, x_test, y_test" in message
    assert "\n" not in message


def test_missing_cifar10_data_fails_reading_the_store_not_running_the_method(
    store: Path,
) -> None:
    with pytest.raises(StoreError, match="CIFAR-10 images are not fetched yet"):
        read_ensembles(bind_forget_sets(TinyEasyDUB(), store), store, 3)


def test_an_imported_store_binds_easydubs_recipe(store: Path) -> None:
    bound = bind_forget_sets(TinyEasyDUB(), store)
    assert bound.recipe.epochs == 24 and not bound.buildable
    assert read_manifest(store).retrain_seconds == {}  # nothing was timed: not built here


def test_load_data_reads_a_local_cifar10_npz(store: Path, cifar_npz: Path) -> None:
    data = bind_forget_sets(TinyEasyDUB(), store).load_data()
    assert data.inputs.shape == (N_TRAIN + N_VAL, 3, 32, 32)
    assert data.train_indices.tolist() == list(range(N_TRAIN))
    assert data.validation_indices.tolist() == list(range(N_TRAIN, N_TRAIN + N_VAL))
    # A black pixel of the red channel, normalized as EasyDUB does: (0 - mean) / std.
    assert data.inputs[:, 0].min() == pytest.approx(-0.4914 / 0.2023, rel=1e-5)


def test_resnet9_has_easydubs_state_dict_keys() -> None:
    keys = list(resnet9().state_dict())
    assert len(keys) == 49
    assert keys[:6] == [
        "0.0.weight",
        "0.1.weight",
        "0.1.bias",
        "0.1.running_mean",
        "0.1.running_var",
        "0.1.num_batches_tracked",
    ]
    assert {"2.module.1.0.weight", "5.module.0.1.running_var", "6.0.weight"} <= set(keys)
    assert keys[-1] == "9.weight"


def test_cli_imports_a_full_size_tree_into_a_verified_store(tmp_path: Path) -> None:
    """The real definition (ResNet-9 at full width, 50,000 + 10,000 points), run as a user
    would; the smallest tree it accepts: 2 pretrained models, 4 oracles, one forget set."""
    tree = write_easydub_tree(
        tmp_path / "EasyDUB-dataset",
        n_train=50_000,
        n_val=10_000,
        n_pretrained=2,
        n_oracles=4,
        forget_sets={2: [5, 49_999, 0]},
        build_model=resnet9,
    )
    out = tmp_path / "store"
    result = subprocess.run(
        [sys.executable, "-m", "pytest_unlearn", "import-easydub", str(tree), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert verify_directory(out) == []
    manifest = read_manifest(out)
    assert (manifest.benchmark, manifest.n_models) == ("cifar10-resnet9", 2)
    assert manifest.forget_sets == {"set2": "random"}
    assert "--models 100 clamped to 2" in result.stdout


def test_cli_refuses_an_out_that_is_not_a_store_before_reading_anything(tmp_path: Path) -> None:
    from pytest_unlearn.cli import main

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert main(["import-easydub", str(tmp_path / "no-tree"), "--out", str(precious)]) == 2
    assert (precious / "notes.txt").read_text() == "keep me"
    assert not (precious / MANIFEST_NAME).exists()


def test_tests_are_collected_only_for_the_forget_sets_the_store_holds(
    pytester: pytest.Pytester, tree: Path, tmp_path: Path
) -> None:
    store, _ = _import(tree, tmp_path / "store", forget_ids=[4])
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["benchmark"] = "cifar10-resnet9"  # the registered definition, at miniature size
    (store / "manifest.json").write_text(json.dumps(manifest))
    pytester.makepyfile(mymethod="def unlearn(model, forget, retain, context):\n    return model\n")
    result = pytester.runpytest(
        "--unlearn-method=mymethod:unlearn", "--unlearn-benchmark=cifar10-resnet9",
        f"--unlearn-store={store}", f"--unlearn-cache-dir={tmp_path / 'cache'}",
        "--collect-only", "-q",
    )  # fmt: skip
    ids = [line.split("[", 1)[1].rstrip("]") for line in result.outlines if "test_klom[" in line]
    assert ids == [f"cifar10-resnet9-set4-{split}" for split in ("forget", "retain", "validation")]


def test_a_store_that_cannot_be_bound_collects_tests_that_fail_naming_it(
    pytester: pytest.Pytester, tree: Path, tmp_path: Path
) -> None:
    """A store whose forget sets cannot be bound (here: a recipe this installation does not
    know) must not shrink the run to nothing: the benchmark's declared tests are collected and
    every one fails with the store's error."""
    store, _ = _import(tree, tmp_path / "store", forget_ids=[4])
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["benchmark"] = "cifar10-resnet9"
    manifest["recipe"] = {"name": "a recipe nobody knows"}
    (store / "manifest.json").write_text(json.dumps(manifest))
    pytester.makepyfile(mymethod="def unlearn(model, forget, retain, context):\n    return model\n")
    result = pytester.runpytest(
        "--unlearn-method=mymethod:unlearn", "--unlearn-benchmark=cifar10-resnet9",
        f"--unlearn-store={store}", f"--unlearn-cache-dir={tmp_path / 'cache'}",
        "--unlearn-profile=quick",
    )  # fmt: skip
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 3 and "passed" not in outcomes, outcomes
    assert "pytest-unlearn store error" in output(result)
