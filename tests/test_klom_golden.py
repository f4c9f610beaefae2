"""Every KLoM mode reproduces its column of the golden reference data (tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_unlearn.metric import klom

GOLDEN = Path(__file__).parent / "data" / "klom_reference_cases.npz"

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
    pytest.param("default", "spec_kl_unlearned_oracle", False, id="default-vs-spec"),
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


@pytest.mark.parametrize(
    "engine",
    ["numpy", "torch", pytest.param("cuda", marks=CUDA)],
)
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
    if engine != "numpy":
        device = "cuda" if engine == "cuda" else "cpu"
        u_t, o_t = (torch.from_numpy(m).to(device) for m in (unlearned, oracle))
        got = klom(u_t, o_t, mode=mode).cpu().numpy()
    else:
        got = klom(unlearned, oracle, mode=mode)
    want = golden[f"{scenario}__{column}"]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=0, atol=1e-9)


def test_clipped_scenario_shows_each_documented_defect(golden: dict[str, np.ndarray]) -> None:
    unlearned = golden["clipped_above_100__unlearned"]
    oracle = golden["clipped_above_100__oracle"]
    np.testing.assert_allclose(klom(unlearned, oracle), np.log(1e5), rtol=0, atol=1e-9)
    assert np.all(klom(unlearned, oracle, mode="easydub") == 0.0)
    assert np.all(np.isnan(klom(unlearned, oracle, mode="dub")))
