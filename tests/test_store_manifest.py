"""The store manifest: parsing refuses anything malformed or unsafe, and round-trips the rest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from http_fixture import make_store
from hypothesis import given
from hypothesis import strategies as st

from pytest_unlearn.store.manifest import (
    MANIFEST_NAME,
    SCHEMA,
    FileEntry,
    Manifest,
    StoreError,
    build_manifest,
    sha256_file,
    write_manifest,
)
from pytest_unlearn.store.reader import verify_directory

SHA = "ab" * 32


def _raw(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "benchmark": "digits-mlp",
        "fingerprint": "24610352d6469304",
        "n_models": 100,
        "recipe": {"epochs": 30, "lr": 0.05},
        "forget_sets": {"knn36": "subpopulation", "random36": "random"},
        "files": {"pretrained/weights.safetensors": {"sha256": SHA, "size": 12345}},
    }
    data.update(overrides)
    return data


def _with_path(path: str) -> str:
    return json.dumps(_raw(files={path: {"sha256": SHA, "size": 1}}))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    make_store(root)
    return root


def test_parse_reads_every_field() -> None:
    manifest = Manifest.parse(json.dumps(_raw()), source="test")
    assert manifest.schema == SCHEMA
    assert manifest.benchmark == "digits-mlp"
    assert manifest.n_models == 100
    assert manifest.forget_sets == {"knn36": "subpopulation", "random36": "random"}
    assert manifest.files == (FileEntry("pretrained/weights.safetensors", SHA, 12345),)


def test_parse_accepts_bytes() -> None:
    assert Manifest.parse(json.dumps(_raw()).encode(), source="test").benchmark == "digits-mlp"


def test_to_json_round_trips_a_built_manifest(store: Path) -> None:
    manifest = Manifest.parse((store / MANIFEST_NAME).read_bytes(), source="built")
    assert Manifest.parse(manifest.to_json(), source="again") == manifest


def test_to_json_sorts_keys_with_indent_2() -> None:
    text = Manifest.parse(json.dumps(_raw()), source="test").to_json()
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"


def test_entry_finds_a_file_by_path() -> None:
    manifest = Manifest.parse(json.dumps(_raw()), source="test")
    assert manifest.entry("pretrained/weights.safetensors").size == 12345


def test_entry_of_an_unknown_path_is_a_key_error() -> None:
    manifest = Manifest.parse(json.dumps(_raw()), source="test")
    with pytest.raises(KeyError, match=r"nope\.safetensors"):
        manifest.entry("nope.safetensors")


MALFORMED = [
    pytest.param("{not json", r"not valid JSON", id="non-JSON"),
    pytest.param("[1, 2]", r"expected a JSON object.*got list", id="not-an-object"),
    pytest.param(
        json.dumps({k: v for k, v in _raw().items() if k != "files"}),
        r"missing key 'files'",
        id="missing-files-key",
    ),
    pytest.param(json.dumps(_raw(schema=99)), r"unknown schema 99.*reads schema 1", id="schema-99"),
    pytest.param(json.dumps(_raw(schema="1")), r"'schema' must be an integer", id="schema-string"),
    pytest.param(
        json.dumps(_raw(n_models=True)), r"'n_models' must be an integer", id="bool-count"
    ),
    pytest.param(json.dumps(_raw(n_models=-1)), r"'n_models' must be >= 0", id="negative-models"),
    pytest.param(json.dumps(_raw(recipe=[])), r"'recipe' must be an object", id="recipe-list"),
    pytest.param(
        json.dumps(_raw(forget_sets={"knn36": 3})), r"forget set 'knn36'", id="forget-kind-int"
    ),
    pytest.param(
        json.dumps(_raw(files={"a.safetensors": {"sha256": "AB" * 32, "size": 1}})),
        r"'a.safetensors': sha256 must be 64 lowercase hex",
        id="uppercase-sha",
    ),
    pytest.param(
        json.dumps(_raw(files={"a.safetensors": {"sha256": "ab" * 31, "size": 1}})),
        r"sha256 must be 64 lowercase hex",
        id="short-sha",
    ),
    pytest.param(
        json.dumps(_raw(files={"a.safetensors": {"size": 1}})),
        r"file 'a.safetensors': missing key 'sha256'",
        id="missing-sha",
    ),
    pytest.param(
        json.dumps(_raw(files={"a.safetensors": {"sha256": SHA, "size": -1}})),
        r"size must be a non-negative integer, got -1",
        id="negative-size",
    ),
    pytest.param(
        json.dumps(_raw(files={"a.safetensors": {"sha256": SHA, "size": 1.5}})),
        r"'size' must be an integer",
        id="float-size",
    ),
    pytest.param(
        json.dumps(_raw(files={"a.safetensors": "ab"})),
        r"must map to an object",
        id="entry-not-object",
    ),
    pytest.param(_with_path("/etc/passwd"), r"unsafe file path '/etc/passwd'.*absolute", id="abs"),
    pytest.param(_with_path("C:\\x"), r"unsafe file path.*backslash", id="windows-abs"),
    pytest.param(_with_path("C:/x"), r"unsafe file path.*drive letter", id="drive-letter"),
    pytest.param(_with_path("\\\\server\\x"), r"unsafe file path.*backslash", id="unc"),
    pytest.param(
        _with_path("../evil.safetensors"), r"unsafe file path.*'\.\.'", id="dotdot-escape"
    ),
    pytest.param(_with_path("a/../../b"), r"unsafe file path 'a/../../b'.*'\.\.'", id="a-dotdot-b"),
    pytest.param(_with_path("a\\b.safetensors"), r"unsafe file path.*backslash", id="backslash"),
    pytest.param(_with_path("a//b"), r"unsafe file path.*empty segment", id="empty-segment"),
    pytest.param(_with_path("a/"), r"unsafe file path.*empty segment", id="trailing-slash"),
    pytest.param(_with_path("./a"), r"unsafe file path.*'\.' segment", id="dot-segment"),
    pytest.param(_with_path("a\x00b"), r"unsafe file path.*NUL", id="nul"),
    pytest.param(_with_path(""), r"unsafe file path.*empty", id="empty-path"),
    pytest.param(_with_path(MANIFEST_NAME), r"unsafe file path.*manifest itself", id="manifest"),
    pytest.param(
        '{"schema": 1, "benchmark": "b", "fingerprint": "f", "n_models": 1, "recipe": {}, '
        '"forget_sets": {}, "files": {"a": {"sha256": "' + SHA + '", "size": 1}, '
        '"a": {"sha256": "' + SHA + '", "size": 1}}}',
        r"key 'a' appears twice",
        id="duplicate-path",
    ),
    pytest.param(
        json.dumps(
            _raw(files={"a": {"sha256": SHA, "size": 1}, "a/b": {"sha256": SHA, "size": 1}})
        ),
        r"file 'a' is also a folder of 'a/b'",
        id="file-and-folder",
    ),
    pytest.param("[" * 100_000 + "]" * 100_000, r"not valid JSON \(nested too deeply\)", id="deep"),
    pytest.param(
        '{"schema": ' + "9" * 5000 + "}", r"not valid JSON .*integer string", id="huge-integer"
    ),
    pytest.param(
        json.dumps(_raw(files={"a": {"sha256": SHA, "size": 10**400}})),
        r"file 'a': size 1000.* is larger than any file can be",
        id="huge-size",
    ),
    pytest.param(
        json.dumps(_raw(n_models=10**12)), r"'n_models' is 1000000000000, more than", id="huge-n"
    ),
    pytest.param(
        json.dumps(_raw(forget_sets={"../x": "random"})),
        r"forget set name '\.\./x' must be letters",
        id="forget-set-path",
    ),
    pytest.param(
        json.dumps(_raw(forget_sets={"a\nb": "random"})),
        r"forget set name 'a\\nb' must be letters",
        id="forget-set-newline",
    ),
]


@pytest.mark.parametrize(("raw", "cause"), MALFORMED)
def test_malformed_manifest_is_refused_naming_source_and_cause(raw: str, cause: str) -> None:
    with pytest.raises(StoreError, match=r"^manifest https://h/s/manifest.json: ") as info:
        Manifest.parse(raw, source="https://h/s/manifest.json")
    assert info.match(cause)


def test_constructor_refuses_unsafe_paths_too() -> None:
    with pytest.raises(StoreError, match=r"unsafe file path '\.\./x'"):
        Manifest(1, "b", "f", 1, {}, {}, (FileEntry("../x", SHA, 1),))


# --- properties --------------------------------------------------------------------------

_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=8)
# Folder names have no '.', file names end in ".safetensors": no file is also a folder.
_PATH = st.builds(
    lambda dirs, name: "/".join([*dirs, name + ".safetensors"]),
    st.lists(_NAME, max_size=3),
    _NAME,
)
_ENTRY = st.builds(
    FileEntry,
    path=_PATH,
    sha256=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    size=st.integers(min_value=0, max_value=2**40),
)
_JSON_LEAF = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
_JSON_LEAF = _JSON_LEAF | st.floats(allow_nan=False, allow_infinity=False)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_MANIFEST = st.builds(
    Manifest,
    schema=st.just(SCHEMA),
    benchmark=st.text(max_size=20),
    fingerprint=st.text(alphabet="0123456789abcdef", max_size=16),
    n_models=st.integers(min_value=0, max_value=10_000),
    recipe=st.dictionaries(st.text(max_size=8), _JSON, max_size=4),
    forget_sets=st.dictionaries(
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,7}", fullmatch=True),
        st.sampled_from(["random", "subpopulation"]),
    ),
    files=st.lists(_ENTRY, max_size=5, unique_by=lambda e: e.path).map(tuple),
)


@given(_MANIFEST)
def test_parse_of_to_json_is_identity(manifest: Manifest) -> None:
    assert Manifest.parse(manifest.to_json(), source="property") == manifest


@given(
    st.lists(_NAME, min_size=1, max_size=4),
    st.integers(min_value=0, max_value=4),
    st.booleans(),
)
def test_path_with_dotdot_segment_or_leading_slash_is_refused(
    segments: list[str], where: int, absolute: bool
) -> None:
    if absolute:
        path = "/" + "/".join(segments)
    else:
        parts = list(segments)
        parts.insert(min(where, len(parts)), "..")
        path = "/".join(parts)
    with pytest.raises(StoreError, match="unsafe file path"):
        Manifest.parse(_with_path(path), source="property")


# --- files on disk -----------------------------------------------------------------------


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # > 1 MiB: more than one block
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_build_manifest_lists_relative_posix_paths_sorted(store: Path) -> None:
    manifest = build_manifest(
        store, benchmark="b", fingerprint="f", n_models=8, recipe={}, forget_sets={}
    )
    assert [e.path for e in manifest.files] == [
        "forget_sets/knn36.safetensors",
        "oracles/knn36.safetensors",
        "pretrained/margins.safetensors",
        "pretrained/weights.safetensors",
    ]
    weights = manifest.entry("pretrained/weights.safetensors")
    assert weights.sha256 == sha256_file(store / "pretrained/weights.safetensors")
    assert weights.size == (store / "pretrained/weights.safetensors").stat().st_size


def test_write_manifest_leaves_only_the_manifest(tmp_path: Path) -> None:
    manifest = Manifest.parse(json.dumps(_raw()), source="test")
    write_manifest(tmp_path, manifest)
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_NAME]
    assert Manifest.parse((tmp_path / MANIFEST_NAME).read_text(), source="disk") == manifest


def test_verify_directory_of_a_good_store_is_empty(store: Path) -> None:
    assert verify_directory(store) == []


def test_verify_directory_names_a_flipped_byte(tmp_path: Path) -> None:
    manifest = make_store(tmp_path)
    target = tmp_path / "oracles/knn36.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    expected = manifest.entry("oracles/knn36.safetensors").sha256
    actual = hashlib.sha256(data).hexdigest()
    assert verify_directory(tmp_path) == [
        f"oracles/knn36.safetensors: sha256 mismatch: expected {expected}, got {actual}"
    ]


def test_verify_directory_names_a_missing_file(tmp_path: Path) -> None:
    make_store(tmp_path)
    (tmp_path / "pretrained/margins.safetensors").unlink()
    assert verify_directory(tmp_path) == ["pretrained/margins.safetensors: missing"]


def test_verify_directory_names_a_size_mismatch(tmp_path: Path) -> None:
    manifest = make_store(tmp_path)
    with (tmp_path / "forget_sets/knn36.safetensors").open("ab") as handle:
        handle.write(b"x")
    size = manifest.entry("forget_sets/knn36.safetensors").size
    assert verify_directory(tmp_path) == [
        f"forget_sets/knn36.safetensors: size mismatch: expected {size} bytes, found {size + 1}"
    ]


def test_verify_directory_names_a_file_the_manifest_does_not_list(tmp_path: Path) -> None:
    make_store(tmp_path)
    (tmp_path / "oracles" / "extra.safetensors").write_bytes(b"unverified")
    assert verify_directory(tmp_path) == [
        f"oracles/extra.safetensors: on disk but not listed in {MANIFEST_NAME} "
        "(never verified: remove it)"
    ]


def test_verify_directory_skips_hidden_entries(tmp_path: Path) -> None:
    make_store(tmp_path)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main")
    (tmp_path / ".gitattributes").write_text("*.safetensors filter=lfs")
    assert verify_directory(tmp_path) == []


def test_verify_directory_names_a_needed_file_the_manifest_does_not_list(tmp_path: Path) -> None:
    manifest = make_store(tmp_path)
    kept = tuple(e for e in manifest.files if e.path != "forget_sets/knn36.safetensors")
    write_manifest(tmp_path, Manifest(**{**manifest.__dict__, "files": kept}))
    (tmp_path / "forget_sets" / "knn36.safetensors").unlink()
    assert verify_directory(tmp_path) == [
        f"forget_sets/knn36.safetensors: needed (forget set knn36) but not listed in "
        f"{MANIFEST_NAME}"
    ]


def test_verify_directory_of_an_empty_file_list_names_what_is_needed(tmp_path: Path) -> None:
    manifest = Manifest.parse(json.dumps(_raw(files={})), source="test")
    write_manifest(tmp_path, manifest)
    problems = verify_directory(tmp_path)
    assert (
        f"pretrained/weights.safetensors: needed (the pretrained models) but not listed in "
        f"{MANIFEST_NAME}" in problems
    )
    assert (
        "oracles/knn36.safetensors: needed (the oracles of forget set knn36) but not "
        f"listed in {MANIFEST_NAME}" in problems
    )
