"""Every KLoM mode reproduces its column of the golden reference data (tests/data/README.md):
the oracle-anchored default ``klom_anchored_cases.npz``, the combined-range and published
modes ``klom_reference_cases.npz``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_unlearn.metric import klom

GOLDEN = Path(__file__).parent / "data" / "klom_reference_cases.npz"
ANCHORED = Path(__file__).parent / "data" / "klom_anchored_cases.npz"

SCENARIOS = (
    "shifted_gauss",
    "identical",
    "same_distribution",
    "far_apart",
    "constant_unlearned",
    "clipped_above_100",
    "integer_ties",
)

# (mode, golden column, whether the column was computed as KL(oracle || unlearned))
COLUMNS = [
    pytest.param("combined", "spec_kl_unlearned_oracle", False, id="combined-vs-spec"),
    pytest.param("easydub", "easydub_kl_unlearned_oracle", False, id="easydub"),
    pytest.param("dub", "dub_entropy_kl_unlearned_oracle", False, id="dub"),
    pytest.param("dub", "dub_entropy_kl_oracle_unlearned", True, id="dub-swapped-args"),
]


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


def test_golden_file_holds_every_scenario_as_documented(golden: dict[str, np.ndarray]) -> None:
    for name in SCENARIOS:
        for ensemble in ("unlearned", "oracle"):
            margins = golden[f"{name}__{ensemble}"]
            assert margins.shape == (100, 300)
            assert margins.dtype == np.float32
        for param in COLUMNS:
            assert golden[f"{name}__{param.values[1]}"].shape == (300,)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ENGINES = ["numpy", "torch", pytest.param("cuda", marks=CUDA)]


def _klom_on(engine: str, unlearned: np.ndarray, oracle: np.ndarray, **kwargs) -> np.ndarray:
    if engine == "numpy":
        return klom(unlearned, oracle, **kwargs)
    device = "cuda" if engine == "cuda" else "cpu"
    u_t, o_t = (torch.from_numpy(m).to(device) for m in (unlearned, oracle))
    if engine == "torch":  # the accelerator engine itself, run on the CPU
        from pytest_unlearn.metric.klom import _klom_torch

        mode = kwargs.get("mode", "default")
        return _klom_torch(
            u_t, o_t, mode, kwargs.get("bins", 20), kwargs.get("eps", 1e-5), 100.0
        ).numpy()
    return klom(u_t, o_t, **kwargs).cpu().numpy()


@pytest.fixture(scope="module")
def anchored() -> dict[str, np.ndarray]:
    with np.load(ANCHORED) as data:
        return {key: data[key] for key in data.files}


ANCHORED_SCENARIOS = [
    f"{group}_{name}"
    for group in ("a", "b")
    for name in (
        "same_distribution", "shifted", "spread_exploit", "spread_pinned", "identical",
        "constant_oracle", "beyond_clip", "edge_values", "integer_ties",
    )
]  # fmt: skip
ANCHORED_COLUMNS = [
    pytest.param("klom", {}, id="bins20-eps1e-5"),
    pytest.param("klom_bins10_eps1e-3", {"bins": 10, "eps": 1e-3}, id="bins10-eps1e-3"),
]


def test_anchored_golden_file_holds_every_scenario_as_documented(
    anchored: dict[str, np.ndarray],
) -> None:
    for name in ANCHORED_SCENARIOS:
        models = (30, 50) if name.startswith("a_") else (100, 100)
        points = 173 if name.startswith("a_") else 97
        assert anchored[f"{name}_unlearned"].shape == (models[0], points)
        assert anchored[f"{name}_oracle"].shape == (models[1], points)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("column", "kwargs"), ANCHORED_COLUMNS)
@pytest.mark.parametrize("scenario", ANCHORED_SCENARIOS)
def test_default_matches_anchored_golden(
    anchored: dict[str, np.ndarray], scenario: str, column: str, kwargs: dict, engine: str
) -> None:
    got = _klom_on(
        engine, anchored[f"{scenario}_unlearned"], anchored[f"{scenario}_oracle"], **kwargs
    )
    np.testing.assert_allclose(got, anchored[f"{scenario}_{column}"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("mode", "column", "swapped"), COLUMNS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_mode_matches_golden_column(
    golden: dict[str, np.ndarray],
    scenario: str,
    mode: str,
    column: str,
    swapped: bool,
    engine: str,
) -> None:
    unlearned = golden[f"{scenario}__unlearned"]
    oracle = golden[f"{scenario}__oracle"]
    if swapped:
        unlearned, oracle = oracle, unlearned
    got = _klom_on(engine, unlearned, oracle, mode=mode)
    want = golden[f"{scenario}__{column}"]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=0, atol=1e-9)


def test_clipped_scenario_shows_each_documented_defect(golden: dict[str, np.ndarray]) -> None:
    unlearned = golden["clipped_above_100__unlearned"]
    oracle = golden["clipped_above_100__oracle"]
    np.testing.assert_allclose(klom(unlearned, oracle), np.log(1e5), rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        klom(unlearned, oracle, mode="combined"), np.log(1e5), rtol=0, atol=1e-9
    )
    assert np.all(klom(unlearned, oracle, mode="easydub") == 0.0)
    assert np.all(np.isnan(klom(unlearned, oracle, mode="dub")))
