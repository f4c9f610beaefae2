"""The plugin's options: where they are documented, how their sources combine, how bad
values fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import IDENTITY_METHOD, output

from pytest_unlearn.settings import DEFAULT_MODELS, Settings
from pytest_unlearn.store import default_cache_dir

FLAGS = [
    "--unlearn-method",
    "--unlearn-models",
    "--unlearn-cache-dir",
    "--unlearn-device",
    "--unlearn-benchmark",
]
GROUP_TITLE = "machine-unlearning conformance (pytest-unlearn):"


class _Resolved:
    """A plugin that records what ``Settings.from_config`` resolves for the inner run."""

    def __init__(self) -> None:
        self.settings: Settings | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        self.settings = Settings.from_config(config)


def _resolve(pytester: pytest.Pytester, *args: str) -> Settings:
    recorder = _Resolved()
    pytester.runpytest("--collect-only", "-q", *args, plugins=[recorder])
    assert recorder.settings is not None, "the inner run never configured"
    return recorder.settings


def _set_sources(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    sources: dict[str, str],
) -> list[str]:
    """Write the ini and env sources of option ``name``; return the CLI args to pass."""
    key = "unlearn_" + name.replace("-", "_")
    if "ini" in sources:
        pytester.makeini(f"[pytest]\n{key} = {sources['ini']}\n")
    if "env" in sources:
        monkeypatch.setenv("PYTEST_" + key.upper(), sources["env"])
    return [f"--unlearn-{name}={sources['cli']}"] if "cli" in sources else []


# -- documentation ---------------------------------------------------------------------------


def _help_group(lines: list[str]) -> list[str]:
    """The lines of ``pytest --help`` under the unlearn option group."""
    start = lines.index(GROUP_TITLE)
    group = []
    for line in lines[start + 1 :]:
        if line and not line.startswith(" "):  # the next group's title
            break
        group.append(line)
    return group


@pytest.mark.parametrize("flag", FLAGS)
def test_option_is_listed_in_help_under_the_unlearn_group(
    pytester: pytest.Pytester, flag: str
) -> None:
    result = pytester.runpytest("--help")
    group = _help_group(result.outlines)
    assert any(line.strip().startswith(f"{flag}=") for line in group), "\n".join(group)


@pytest.mark.parametrize("flag", FLAGS)
def test_help_names_the_environment_variable_of_each_option(
    pytester: pytest.Pytester, flag: str
) -> None:
    result = pytester.runpytest("--help")
    env = "PYTEST_" + flag.removeprefix("--").replace("-", "_").upper()
    assert env in " ".join(" ".join(_help_group(result.outlines)).split())


@pytest.mark.parametrize("flag", FLAGS)
def test_each_option_has_an_ini_key(pytester: pytest.Pytester, flag: str) -> None:
    result = pytester.runpytest("--help")
    ini = flag.removeprefix("--").replace("-", "_")
    assert any(line.strip().startswith(f"{ini} (") for line in result.outlines)


# -- precedence: CLI > env > ini > default ---------------------------------------------------

LAYERS = [
    pytest.param({}, "default", id="default"),
    pytest.param({"ini": "i"}, "ini", id="ini-over-default"),
    pytest.param({"ini": "i", "env": "e"}, "env", id="env-over-ini"),
    pytest.param({"env": "e", "cli": "c"}, "cli", id="cli-over-env"),
    pytest.param({"ini": "i", "env": "e", "cli": "c"}, "cli", id="cli-over-all"),
    pytest.param({"ini": "i", "cli": "c"}, "cli", id="cli-over-ini"),
]


@pytest.mark.parametrize(("layers", "winner"), LAYERS)
def test_models_precedence_cli_env_ini_default(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, layers: dict, winner: str
) -> None:
    values = {"ini": "5", "env": "6", "cli": "7"}
    args = _set_sources(pytester, monkeypatch, "models", {k: values[k] for k in layers})
    expected = DEFAULT_MODELS if winner == "default" else int(values[winner])
    assert _resolve(pytester, *args).models == expected


@pytest.mark.parametrize(("layers", "winner"), LAYERS)
def test_device_precedence_cli_env_ini_default(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, layers: dict, winner: str
) -> None:
    # A CPU-only machine has two distinct usable devices ('meta' is refused: it holds no data),
    # each unlike its neighbour in the order; the precedence logic itself is every option's.
    values = {"ini": "cpu:0", "env": "cpu", "cli": "cpu:0"}
    args = _set_sources(pytester, monkeypatch, "device", {k: values[k] for k in layers})
    default = "cuda" if torch.cuda.is_available() else "cpu"
    expected = torch.device(default if winner == "default" else values[winner])
    assert _resolve(pytester, *args).device == expected


@pytest.mark.parametrize(("layers", "winner"), LAYERS)
def test_cache_dir_precedence_cli_env_ini_default(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, layers: dict, winner: str
) -> None:
    values = {"ini": "from-ini", "env": "from-env", "cli": "from-cli"}
    args = _set_sources(pytester, monkeypatch, "cache-dir", {k: values[k] for k in layers})
    expected = default_cache_dir() if winner == "default" else pytester.path / values[winner]
    assert _resolve(pytester, *args).cache_dir == expected


@pytest.mark.parametrize(("layers", "winner"), LAYERS)
def test_method_precedence_cli_env_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, layers: dict, winner: str
) -> None:
    values = {"ini": "ini_method:unlearn", "env": "env_method:unlearn", "cli": "cli_method:unlearn"}
    pytester.makepyfile(
        ini_method=IDENTITY_METHOD, env_method=IDENTITY_METHOD, cli_method=IDENTITY_METHOD
    )
    args = _set_sources(pytester, monkeypatch, "method", {k: values[k] for k in layers})
    expected = None if winner == "default" else values[winner]
    assert _resolve(pytester, *args).method == expected


@pytest.mark.parametrize(
    ("layers", "valid"),
    [
        pytest.param({"ini": "nope", "env": "digits-mlp"}, True, id="env-hides-bad-ini"),
        pytest.param({"env": "nope", "cli": "digits-mlp"}, True, id="cli-hides-bad-env"),
        pytest.param({"ini": "digits-mlp", "env": "nope"}, False, id="bad-env-beats-good-ini"),
        pytest.param({"env": "digits-mlp", "cli": "nope"}, False, id="bad-cli-beats-good-env"),
    ],
)
def test_benchmark_precedence_cli_env_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, layers: dict, valid: bool
) -> None:
    # Only one benchmark exists, so the winner shows through whether its value is valid.
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    args = _set_sources(pytester, monkeypatch, "benchmark", layers)
    result = pytester.runpytest("--unlearn-method=mymethod:unlearn", "--collect-only", "-q", *args)
    if valid:
        assert result.ret == pytest.ExitCode.OK
    else:
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert "unknown benchmark nope" in result.stderr.str()


def test_benchmark_default_is_the_embedded_default(pytester: pytest.Pytester) -> None:
    assert _resolve(pytester).benchmarks == ("digits-mlp",)


def test_benchmark_all_selects_every_buildable_cpu_benchmark(pytester: pytest.Pytester) -> None:
    from pytest_unlearn.benchmarks import available_benchmarks, get_benchmark

    benchmarks = [get_benchmark(name) for name in available_benchmarks()]
    expected = tuple(b.name for b in benchmarks if b.buildable and not b.gpu)
    assert any(b.gpu and b.buildable for b in benchmarks)  # else this test shows nothing
    assert _resolve(pytester, "--unlearn-benchmark=all").benchmarks == expected


def test_threads_default_to_the_share_of_the_cores(pytester: pytest.Pytester) -> None:
    assert _resolve(pytester).threads is None


def test_threads_setting_is_read_as_an_integer(pytester: pytest.Pytester) -> None:
    assert _resolve(pytester, "--unlearn-threads=3").threads == 3


def test_relative_cache_dir_resolves_against_the_invocation_dir(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rootdir (the ini file) is pytester.path; pytest is started one level below it.
    pytester.makeini("[pytest]\n")
    start = pytester.mkdir("start")
    monkeypatch.chdir(start)
    settings = _resolve(pytester, "--unlearn-cache-dir=rel/cache")
    assert settings.cache_dir == start / "rel" / "cache"


def test_cache_dir_expands_the_user_home(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(pytester.path / "home"))
    settings = _resolve(pytester, "--unlearn-cache-dir=~/unlearn")
    assert settings.cache_dir == pytester.path / "home" / "unlearn"


# -- bad values: one usage error naming the source -------------------------------------------

BAD_VALUES = [
    pytest.param(
        "models", "abc", "expected an integer number of models, got 'abc'", id="models-abc"
    ),
    pytest.param("models", "1", "an ensemble needs at least 2 models, got 1", id="models-1"),
    pytest.param("benchmark", "nope", "unknown benchmark nope (known: ", id="benchmark"),
    pytest.param("device", "bogus", "'bogus' is not a torch device", id="device-bogus"),
    pytest.param("threads", "two", "expected a number of threads, got 'two'", id="threads-two"),
    pytest.param(
        "threads", "0", "the number of threads must be at least 1, got '0'", id="threads-0"
    ),
    pytest.param(
        "models", "100000000", "at most 10000 models per ensemble, got 100000000", id="models-huge"
    ),
    pytest.param("timeout", "inf", "the timeout must be a positive, finite", id="timeout-inf"),
    pytest.param("timeout", "nan", "the timeout must be a positive, finite", id="timeout-nan"),
    pytest.param("timeout", "-1", "the timeout must be a positive, finite", id="timeout-negative"),
    pytest.param("device", "meta", "'meta' is not a device a method can run on", id="device-meta"),
    pytest.param("param", "a=1; a=2", "parameter 'a' is given", id="param-twice"),
]
if not torch.cuda.is_available():
    BAD_VALUES.append(
        pytest.param(
            "device", "cuda", "device 'cuda' requested but CUDA is not available", id="device-cuda"
        )
    )

SOURCES = {
    "flag": "--unlearn-{name}",
    "env": "PYTEST_UNLEARN_{NAME}",
    "ini": "ini unlearn_{name_}",
}


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize(("name", "value", "message"), BAD_VALUES)
def test_bad_option_value_is_a_usage_error_naming_its_source(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    message: str,
    source: str,
) -> None:
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    layer = {"flag": "cli"}.get(source, source)
    args = _set_sources(pytester, monkeypatch, name, {layer: value})
    result = pytester.runpytest("--unlearn-method=mymethod:unlearn", "--collect-only", "-q", *args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    label = SOURCES[source].format(name=name, NAME=name.upper(), name_=name.replace("-", "_"))
    error_lines = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(error_lines) == 1, result.errlines
    assert error_lines[0].startswith(f"ERROR: {label}: {message}")
    assert "Traceback" not in output(result)


def test_bad_option_values_are_ignored_while_the_plugin_is_inert(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest(
        "--unlearn-models=abc", "--unlearn-device=bogus", "--unlearn-benchmark=nope"
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK


def test_usage_error_lists_the_known_benchmarks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    result = pytester.runpytest(
        "--unlearn-method=mymethod:unlearn", "--unlearn-benchmark=digits-mlp,nope", "--co"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --unlearn-benchmark: unknown benchmark nope (known: *)"])
    assert "digits-mlp" in result.stderr.str().partition("known:")[2]


def test_unset_ini_and_env_fall_through_to_the_default(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty environment variable does not count as set.
    monkeypatch.setenv("PYTEST_UNLEARN_MODELS", "")
    pytester.makeini("[pytest]\nunlearn_models = 9\n")
    assert _resolve(pytester).models == 9


def test_settings_are_resolved_from_an_absolute_cache_dir_unchanged(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    assert _resolve(pytester, f"--unlearn-cache-dir={tmp_path}").cache_dir == tmp_path


@pytest.mark.skipif(
    int(pytest.__version__.split(".")[0]) < 9, reason="the native [tool.pytest] table is pytest 9"
)
def test_integer_models_in_the_native_toml_table_is_not_an_internal_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    pytester.makepyprojecttoml("[tool.pytest]\nunlearn_models = 16\n")
    result = pytester.runpytest("--unlearn-method=mymethod:unlearn", "--collect-only", "-q")
    assert "INTERNALERROR" not in output(result)
    assert "Traceback" not in output(result)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.USAGE_ERROR)
    if result.ret == pytest.ExitCode.USAGE_ERROR:
        assert "unlearn_models" in result.stderr.str()


def test_string_models_in_the_native_toml_table_is_read(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.pytest]\nunlearn_models = "16"\n')
    assert _resolve(pytester).models == 16


def test_integer_models_in_the_legacy_ini_options_table_is_read(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\nunlearn_models = 16\n")
    assert _resolve(pytester).models == 16


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without MPS")
def test_unavailable_non_cuda_device_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    result = pytester.runpytest(
        "--unlearn-method=mymethod:unlearn", "--unlearn-device=mps", "--collect-only", "-q"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--unlearn-device" in result.stderr.str()
