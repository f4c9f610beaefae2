"""Reading a store: nothing unlisted or unfit is used; every problem is one StoreError.

Every test tampers with a copy of one small digits-mlp store (one-epoch recipe, 2 models) and
re-seals its manifest, so the sha256 and sizes are right and only the content check can catch
what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from pytest_unlearn.benchmarks.digits_mlp import DigitsMLP
from pytest_unlearn.store import StoreError, build_store, read_ensembles
from pytest_unlearn.store.manifest import (
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    build_manifest,
    read_manifest,
    write_manifest,
)
from pytest_unlearn.store.reader import verify_directory

MODELS = 2
POINTS = 1797  # every labelled image of scikit-learn's digits
ORACLE = "oracles/knn36.safetensors"
WEIGHTS = "pretrained/weights.safetensors"
MARGINS = "pretrained/margins.safetensors"
SHA = "ab" * 32


class QuickDigits(DigitsMLP):
    """digits-mlp with a one-epoch recipe: its own fingerprint, and a build of a second."""

    recipe = dataclasses.replace(DigitsMLP.recipe, epochs=1)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("built") / "store"
    return build_store(QuickDigits(), MODELS, out, log=lambda message: None)


@pytest.fixture
def store(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built store, to tamper with."""
    return Path(shutil.copytree(built, tmp_path / "store"))


def _reseal(store: Path, *, drop: tuple[str, ...] = ()) -> None:
    """Rewrite the manifest from the files on disk (as a forger would), leaving out ``drop``."""
    old = read_manifest(store)
    manifest = build_manifest(
        store,
        benchmark=old.benchmark,
        fingerprint=old.fingerprint,
        n_models=old.n_models,
        recipe=old.recipe,
        forget_sets=old.forget_sets,
    )
    kept = tuple(entry for entry in manifest.files if entry.path not in drop)
    write_manifest(store, dataclasses.replace(manifest, files=kept))


def _replace(store: Path, relative: str, tensors: dict[str, torch.Tensor]) -> None:
    save_file(tensors, str(store / relative))
    _reseal(store)


def _read_error(store: Path) -> str:
    with pytest.raises(StoreError) as error:
        read_ensembles(QuickDigits(), store, MODELS)
    message = str(error.value)
    assert "\n" not in message
    return message


def _oracles(store: Path) -> dict[str, torch.Tensor]:
    return load_file(str(store / ORACLE))


def test_a_good_store_reads_and_verifies(store: Path) -> None:
    ensembles = read_ensembles(QuickDigits(), store, MODELS)
    assert ensembles.pretrained_margins.shape == (MODELS, POINTS)
    assert verify_directory(store) == []


# --- files the manifest does not list ------------------------------------------------------


def _forge_unlisted_oracles(store: Path) -> None:
    """The hostile tester's attack: drop the oracles from the manifest, put fakes in place."""
    _reseal(store, drop=(ORACLE,))
    fake = {"half_a": torch.zeros(MODELS, POINTS), "half_b": torch.zeros(MODELS, POINTS)}
    save_file(fake, str(store / ORACLE))


def test_an_oracle_file_the_manifest_does_not_list_is_never_read(store: Path) -> None:
    _forge_unlisted_oracles(store)
    message = _read_error(store)
    assert f"{store / ORACLE}: not listed in {store / MANIFEST_NAME}" in message


def test_verify_reports_a_file_on_disk_the_manifest_does_not_list(store: Path) -> None:
    _forge_unlisted_oracles(store)
    assert f"{ORACLE}: on disk but not listed in {MANIFEST_NAME}" in " | ".join(
        verify_directory(store)
    )


def test_verify_reports_a_file_the_benchmark_needs_that_the_manifest_does_not_list(
    store: Path,
) -> None:
    _reseal(store, drop=(ORACLE,))
    (store / ORACLE).unlink()
    problems = verify_directory(store)
    assert problems == [
        f"{ORACLE}: needed (the oracles of forget set knn36) but not listed in {MANIFEST_NAME}"
    ]


def test_a_manifest_listing_no_files_is_refused_naming_the_weights(store: Path) -> None:
    _reseal(store, drop=tuple(entry.path for entry in read_manifest(store).files))
    assert read_manifest(store).files == ()
    assert f"{store / WEIGHTS}: not listed" in _read_error(store)
    assert any(p.startswith(f"{WEIGHTS}: needed") for p in verify_directory(store))


def test_a_file_whose_size_differs_from_the_manifest_is_refused(store: Path) -> None:
    with (store / MARGINS).open("ab") as handle:
        handle.write(b"\0")
    assert f"{store / MARGINS}: " in _read_error(store)


# --- safetensors content --------------------------------------------------------------------


def test_a_file_that_is_not_safetensors_is_one_error_naming_it(store: Path) -> None:
    (store / WEIGHTS).write_bytes(b"\xff" * 64)
    _reseal(store)
    message = _read_error(store)
    assert message.startswith(f"{store / WEIGHTS}: not a readable safetensors file")


def test_a_missing_tensor_is_one_error_naming_file_and_tensor(store: Path) -> None:
    _replace(store, MARGINS, {"logits": torch.zeros(MODELS, POINTS)})
    message = _read_error(store)
    assert message.startswith(f"{store / MARGINS}: tensor names do not match")
    assert "missing ['margins']" in message


def test_weights_of_another_architecture_are_refused(store: Path) -> None:
    weights = load_file(str(store / WEIGHTS))
    weights["0.weight"] = torch.zeros(MODELS, 3, 64)
    _replace(store, WEIGHTS, weights)
    message = _read_error(store)
    assert message.startswith(f"{store / WEIGHTS}: '0.weight' has shape (2, 3, 64)")


def test_weights_of_another_dtype_are_refused(store: Path) -> None:
    weights = {k: v.double() for k, v in load_file(str(store / WEIGHTS)).items()}
    _replace(store, WEIGHTS, weights)
    assert "torch.float64; expected torch.float32" in _read_error(store)


def test_weights_with_an_extra_tensor_are_refused(store: Path) -> None:
    weights = load_file(str(store / WEIGHTS))
    weights["backdoor"] = torch.zeros(MODELS, 1)
    _replace(store, WEIGHTS, weights)
    assert "unexpected ['backdoor']" in _read_error(store)


def test_nan_in_weights_is_refused(store: Path) -> None:
    weights = load_file(str(store / WEIGHTS))
    weights["2.bias"][1, 3] = float("nan")
    _replace(store, WEIGHTS, weights)
    assert _read_error(store) == f"{store / WEIGHTS}: '2.bias' holds 1 NaN or infinite values"


def test_infinite_margins_are_refused(store: Path) -> None:
    margins = load_file(str(store / MARGINS))["margins"]
    margins[0, :5] = float("inf")
    _replace(store, MARGINS, {"margins": margins})
    assert _read_error(store) == f"{store / MARGINS}: 'margins' holds 5 NaN or infinite values"


def test_margins_over_the_wrong_number_of_points_are_refused(store: Path) -> None:
    _replace(store, MARGINS, {"margins": torch.zeros(MODELS, POINTS - 1)})
    assert "'margins' has shape (2, 1796); expected (models, 1797)" in _read_error(store)


def test_integer_margins_are_refused(store: Path) -> None:
    _replace(store, MARGINS, {"margins": torch.zeros(MODELS, POINTS, dtype=torch.int32)})
    assert "expected floating-point margins" in _read_error(store)


def test_an_oracle_half_shorter_than_the_manifest_says_is_refused(store: Path) -> None:
    halves = _oracles(store)
    halves["half_b"] = halves["half_b"][:1].clone()
    _replace(store, ORACLE, halves)
    with pytest.raises(StoreError) as error:
        read_ensembles(QuickDigits(), store, 1)  # even when fewer models are asked for
    assert str(error.value) == f"{store / ORACLE}: 'half_b' holds 1 models; the manifest says 2"


def test_forget_set_indices_other_than_the_benchmarks_are_refused(store: Path) -> None:
    path = "forget_sets/knn36.safetensors"
    indices = load_file(str(store / path))
    indices["indices"] = indices["indices"] + 1
    _replace(store, path, indices)
    message = _read_error(store)
    assert message.startswith(f"{store / path}: 'indices' does not hold the 36 indices")


def test_float_forget_set_indices_are_refused(store: Path) -> None:
    path = "forget_sets/random36.safetensors"
    indices = load_file(str(store / path))
    indices["indices"] = indices["indices"].double()
    _replace(store, path, indices)
    assert "expected integer indices" in _read_error(store)


def test_a_forget_set_the_benchmark_does_not_define_is_refused(store: Path) -> None:
    manifest = read_manifest(store)
    forget_sets = {**manifest.forget_sets, "extra": "random"}
    write_manifest(store, dataclasses.replace(manifest, forget_sets=forget_sets))
    assert "forget set 'extra' is not one digits-mlp defines" in _read_error(store)


# --- manifests no JSON parser should choke on ------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cause"),
    [
        pytest.param("[" * 100_000 + "]" * 100_000, "nested too deeply", id="deep-array"),
        pytest.param('{"a": ' * 50_000 + "1" + "}" * 50_000, "nested too deeply", id="deep-obj"),
        pytest.param('{"schema": ' + "9" * 5000 + "}", "integer string conversion", id="huge-int"),
    ],
)
def test_a_hostile_manifest_is_one_store_error(store: Path, raw: str, cause: str) -> None:
    (store / MANIFEST_NAME).write_text(raw)
    message = _read_error(store)
    assert message.startswith(f"manifest {store / MANIFEST_NAME}: not valid JSON")
    assert cause in message


def test_a_huge_file_size_is_refused(store: Path) -> None:
    data = json.loads((store / MANIFEST_NAME).read_text())
    data["files"][WEIGHTS]["size"] = 10**400
    (store / MANIFEST_NAME).write_text(json.dumps(data))
    assert "larger than any file can be" in _read_error(store)


# --- which forget sets a store holds -----------------------------------------------------------


def test_stored_forget_sets_are_the_manifests(built: Path) -> None:
    from pytest_unlearn.store.reader import stored_forget_sets

    assert stored_forget_sets(built) == ("knn36", "random36", "seq3x12")


def test_stored_forget_sets_sort_numbers_numerically(tmp_path: Path) -> None:
    from pytest_unlearn.store.reader import stored_forget_sets

    paths = [WEIGHTS, MARGINS]
    for name in ("set10", "set2"):
        paths += [f"oracles/{name}.safetensors", f"forget_sets/{name}.safetensors"]
    manifest = Manifest(
        1,
        "some-import",
        "f",
        2,
        {},
        {"set10": "random", "set2": "random"},
        tuple(FileEntry(path, SHA, 1) for path in paths),
    )
    write_manifest(tmp_path, manifest)
    assert stored_forget_sets(tmp_path) == ("set2", "set10")


def test_stored_forget_sets_refuse_a_forget_set_without_its_files(store: Path) -> None:
    from pytest_unlearn.store.reader import stored_forget_sets

    _reseal(store, drop=("forget_sets/random36.safetensors",))
    with pytest.raises(StoreError, match=r"forget_sets/random36.safetensors: needed"):
        stored_forget_sets(store)


def test_a_store_of_fewer_forget_sets_reads_only_those(store: Path) -> None:
    manifest = read_manifest(store)
    drop = ("oracles/random36.safetensors", "forget_sets/random36.safetensors")
    for path in drop:
        (store / path).unlink()
    kept = tuple(entry for entry in manifest.files if entry.path not in drop)
    forget_sets = {k: v for k, v in manifest.forget_sets.items() if k != "random36"}
    write_manifest(store, dataclasses.replace(manifest, files=kept, forget_sets=forget_sets))
    ensembles = read_ensembles(QuickDigits(), store, MODELS)
    assert sorted({name for name, _ in ensembles.oracles}) == ["knn36", "seq3x12"]
