"""The one table of options (``pytest_unlearn.settings.OPTIONS``): what follows from each entry,
its validators, and the README's options table, which must be exactly the generated one."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_unlearn.cli import main
from pytest_unlearn.settings import (
    OPTIONS,
    Invalid,
    Settings,
    boolean,
    choice,
    integer,
    option,
    options_table,
    seconds,
)

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_options_table() -> str:
    """The Markdown table under the README's ``## Options`` heading."""
    lines = README.read_text(encoding="utf-8").splitlines()
    section = lines[lines.index("## Options") + 1 :]
    section = section[: next(i for i, line in enumerate(section) if line.startswith("## "))]
    start = next(i for i, line in enumerate(section) if line.startswith("|"))
    table = []
    for line in section[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return "\n".join(table) + "\n"


# -- the docs come from the table ------------------------------------------------------------


def test_the_readme_options_table_is_the_generated_one() -> None:
    assert _readme_options_table() == options_table(), (
        "README.md's options table differs from pytest_unlearn/settings.py: replace it with "
        "the output of `python -m pytest_unlearn options`"
    )


def test_the_options_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["options"]) == 0
    captured = capsys.readouterr()
    assert captured.out == options_table()
    assert captured.err == ""


def test_the_options_command_runs_as_a_module() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "pytest_unlearn", "options"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == options_table()


def test_the_table_has_one_row_per_option() -> None:
    rows = options_table().splitlines()[2:]
    assert [row.split("`")[1].split("=")[0] for row in rows] == [o.flag for o in OPTIONS]


# -- what follows from each entry ------------------------------------------------------------


def test_option_names_are_unique() -> None:
    assert len({o.name for o in OPTIONS}) == len(OPTIONS)


@pytest.mark.parametrize("entry", OPTIONS, ids=lambda o: o.name)
def test_ini_key_and_env_variable_follow_from_the_name(entry) -> None:
    underscored = entry.name.replace("-", "_")
    assert entry.flag == f"--unlearn-{entry.name}"
    assert entry.ini == f"unlearn_{underscored}"
    assert entry.env == f"PYTEST_UNLEARN_{underscored.upper()}"


def test_every_settings_field_is_one_option() -> None:
    assert sorted(o.field for o in OPTIONS) == sorted(f.name for f in dataclasses.fields(Settings))


@pytest.mark.parametrize("entry", OPTIONS, ids=lambda o: o.name)
def test_every_option_has_a_meaning_and_a_shown_default(entry) -> None:
    assert entry.help and entry.default_text


@pytest.mark.parametrize("entry", OPTIONS, ids=lambda o: o.name)
def test_every_option_is_in_help_with_its_env_variable(pytester: pytest.Pytester, entry) -> None:
    result = pytester.runpytest("--help")
    text = " ".join(" ".join(result.outlines).split())
    assert entry.usage in text
    assert f"[env {entry.env}]" in text
    assert any(line.strip().startswith(f"{entry.ini} (") for line in result.outlines)


def test_the_defaults_live_in_the_table_only() -> None:
    """A default written on a Settings field too could drift from the table's."""
    for f in dataclasses.fields(Settings):
        assert f.default is dataclasses.MISSING, f.name
        assert f.default_factory is dataclasses.MISSING, f.name


def test_quick_profile_lowers_the_default_models(pytester: pytest.Pytester) -> None:
    seen: list[Settings] = []

    class Recorder:
        def pytest_configure(self, config: pytest.Config) -> None:
            seen.append(Settings.from_config(config))

    pytester.runpytest("--collect-only", "-q", "--unlearn-profile=quick", plugins=[Recorder()])
    assert seen[0].models == 50
    assert seen[0].profile == "quick"


def test_settings_resolve_every_default(pytester: pytest.Pytester) -> None:
    seen: list[Settings] = []

    class Recorder:
        def pytest_configure(self, config: pytest.Config) -> None:
            seen.append(Settings.from_config(config))

    pytester.runpytest("--collect-only", "-q", plugins=[Recorder()])
    settings = seen[0]
    assert (settings.method, settings.models, settings.profile) == (None, 100, "full")
    assert (settings.store, settings.offline, settings.timeout) == (None, False, None)
    assert (settings.seed, settings.params, settings.threads) == (0, (), None)
    assert (settings.download_stall, settings.download_deadline) == (60.0, 3600.0)
    assert settings.report is settings.plots is settings.baseline is settings.xfail_file is None


def test_env_and_ini_set_a_flag_option(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Settings] = []

    class Recorder:
        def pytest_configure(self, config: pytest.Config) -> None:
            seen.append(Settings.from_config(config))

    pytester.makeini("[pytest]\nunlearn_offline = true\nunlearn_download_stall = 5\n")
    monkeypatch.setenv("PYTEST_UNLEARN_SEED", "7")
    pytester.runpytest("--collect-only", "-q", plugins=[Recorder()])
    assert (seen[0].offline, seen[0].download_stall, seen[0].seed) == (True, 5.0, 7)


# -- validators ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("validator", "raw", "message"),
    [
        (integer(2, 10), "x", "expected an integer, got 'x'"),
        (integer(2, 10), "1", "must be at least 2, got '1'"),
        (integer(2, lambda: 10), "11", "must be at most 10, got '11'"),
        (seconds(), "soon", "expected a number of seconds, got 'soon'"),
        (seconds(), "0", "expected a positive, finite number of seconds, got '0'"),
        (seconds(), "nan", "expected a positive, finite number of seconds, got 'nan'"),
        (choice("a", "b", what="letter"), "c", "unknown letter 'c' (known: a, b)"),
        (boolean(), "maybe", "expected a boolean (1/0, true/false), got 'maybe'"),
    ],
)
def test_validators_refuse_with_a_message(validator, raw: str, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        validator(raw, None)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("validator", "raw", "value"),
    [
        (integer(2, 10), "10", 10),
        (integer(), "-3", -3),
        (seconds(), "0.5", 0.5),
        (boolean(), " TRUE ", True),
        (boolean(), "", False),
        (choice("a", "b"), "b", "b"),
    ],
)
def test_validators_accept(validator, raw: str, value: object) -> None:
    assert validator(raw, None) == value


def test_a_lazy_maximum_is_only_computed_when_needed() -> None:
    calls: list[int] = []

    def maximum() -> int:
        calls.append(1)
        return 5

    validate = integer(2, maximum)
    with pytest.raises(Invalid):
        validate("x", None)
    assert calls == []
    assert validate("5", None) == 5
    assert calls == [1]


def test_a_computed_default_must_say_how_it_is_shown() -> None:
    entry = dataclasses.replace(option("device"), shown=None)
    with pytest.raises(TypeError, match="a computed default needs a shown text"):
        _ = entry.default_text
