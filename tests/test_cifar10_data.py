"""CIFAR-10 comes from the official binary distribution: parsed with numpy, fetched into the
cache through the store's verified download path, reused offline, or read from a local copy.

Every archive here is a small one in the same format (``tests/tiny_cifar.py``), served from
127.0.0.1.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from http_fixture import running_server, wrong_bytes
from tiny_cifar import N_TEST, PER_BATCH, cifar_batches, tiny_cifar, write_cifar_archive

from pytest_unlearn.benchmarks.cifar10_data import (
    CIFAR10_BINARY_MD5,
    CIFAR10_BINARY_NAME,
    CIFAR10_BINARY_URL,
    TEST_BATCH,
    CIFAR10FormatError,
    read_cifar10,
)
from pytest_unlearn.benchmarks.cifar10_resnet9 import (
    CIFAR10_ENV,
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR10ResNet9,
    CIFAR10Unavailable,
)
from pytest_unlearn.store.data_files import cached_path, provide_data
from pytest_unlearn.store.fetch import IntegrityError, OfflineError

ROUTE = f"/cifar/{CIFAR10_BINARY_NAME}"


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "source" / CIFAR10_BINARY_NAME
    return path, write_cifar_archive(path)


def test_the_official_archive_is_the_binary_version_with_its_published_md5() -> None:
    bench = CIFAR10ResNet9()
    (remote,) = bench.remote_files()
    assert remote.url == CIFAR10_BINARY_URL
    assert remote.url.endswith("/cifar-10-binary.tar.gz")
    assert remote.md5 == CIFAR10_BINARY_MD5 == "c32a1d4ab5d03f1284b67883e8d87530"


def test_binary_records_parse_to_labels_and_channel_planes(archive: tuple[Path, str]) -> None:
    arrays = read_cifar10(archive[0])
    batches = cifar_batches()
    first_labels, first_images = batches["data_batch_1.bin"]
    assert arrays.x_train.shape == (5 * PER_BATCH, 3, 32, 32)
    assert arrays.x_test.shape == (N_TEST, 3, 32, 32)
    assert arrays.x_train.dtype == np.uint8 and arrays.y_train.dtype == np.int64
    np.testing.assert_array_equal(arrays.y_train[:PER_BATCH], first_labels)
    np.testing.assert_array_equal(arrays.x_train[:PER_BATCH], first_images)
    np.testing.assert_array_equal(arrays.y_test, batches[TEST_BATCH][0])


def test_training_images_follow_the_batch_files_in_order(archive: tuple[Path, str]) -> None:
    arrays = read_cifar10(archive[0])
    last_labels, last_images = cifar_batches()["data_batch_5.bin"]
    np.testing.assert_array_equal(arrays.x_train[-PER_BATCH:], last_images)
    np.testing.assert_array_equal(arrays.y_train[-PER_BATCH:], last_labels)


def test_an_extracted_directory_reads_like_the_archive(
    archive: tuple[Path, str], tmp_path: Path
) -> None:
    with tarfile.open(archive[0]) as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    from_dir, from_tar = read_cifar10(tmp_path / "extracted"), read_cifar10(archive[0])
    np.testing.assert_array_equal(from_dir.x_train, from_tar.x_train)
    np.testing.assert_array_equal(from_dir.y_test, from_tar.y_test)


def test_an_archive_missing_a_batch_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "partial.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        blob = bytes(3073)
        info = tarfile.TarInfo("cifar-10-batches-bin/data_batch_1.bin")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(CIFAR10FormatError) as error:
        read_cifar10(path)
    assert "lacks data_batch_2.bin" in str(error.value) and "\n" not in str(error.value)


def test_a_batch_file_of_partial_records_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name in (*(f"data_batch_{k}.bin" for k in range(1, 6)), TEST_BATCH):
        (folder / name).write_bytes(bytes(3073))
    (folder / "data_batch_3.bin").write_bytes(bytes(3073 + 10))
    with pytest.raises(CIFAR10FormatError, match=r"data_batch_3\.bin: 3083 bytes"):
        read_cifar10(tmp_path)


def test_a_label_outside_the_ten_classes_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name in (*(f"data_batch_{k}.bin" for k in range(1, 6)), TEST_BATCH):
        (folder / name).write_bytes(bytes([12]) + bytes(3072))
    with pytest.raises(CIFAR10FormatError, match="label byte 12"):
        read_cifar10(tmp_path)


def test_a_file_that_is_not_an_archive_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / CIFAR10_BINARY_NAME
    path.write_bytes(b"<html>not found</html>")
    with pytest.raises(CIFAR10FormatError, match="not a readable CIFAR-10 binary archive"):
        read_cifar10(path)


def test_the_archive_is_fetched_from_its_url_verified_and_read(
    archive: tuple[Path, str], tmp_path: Path
) -> None:
    path, md5 = archive
    messages: list[str] = []
    with running_server() as server:
        server.routes[ROUTE] = path.read_bytes()
        bench = tiny_cifar(url=server.url + ROUTE, md5=md5)
        ready = provide_data(bench, tmp_path / "cache", log=messages.append)
        assert server.count(ROUTE) == 1
    local = cached_path(bench.archive, tmp_path / "cache")
    assert local.read_bytes() == path.read_bytes()
    assert any("fetching cifar-10-binary.tar.gz" in m for m in messages)
    data = ready.load_data()
    assert data.inputs.shape == (5 * PER_BATCH + N_TEST, 3, 32, 32)
    # A black red pixel, normalized as EasyDUB does: (0 - mean) / std.
    expected_red = cifar_batches()["data_batch_1.bin"][1][0, 0, 0, 0] / 255.0
    assert float(data.inputs[0, 0, 0, 0]) == pytest.approx(
        (expected_red - CIFAR10_MEAN[0]) / CIFAR10_STD[0], rel=1e-5
    )


def test_a_cached_archive_is_reused_offline_without_a_request(
    archive: tuple[Path, str], tmp_path: Path
) -> None:
    path, md5 = archive
    with running_server() as server:
        server.routes[ROUTE] = path.read_bytes()
        bench = tiny_cifar(url=server.url + ROUTE, md5=md5)
        provide_data(bench, tmp_path / "cache", log=lambda m: None)
    # The server is gone: only the cache can answer.
    again = provide_data(bench, tmp_path / "cache", offline=True, log=lambda m: None)
    assert again.load_data().targets.shape == (5 * PER_BATCH + N_TEST,)


def test_an_archive_with_the_wrong_checksum_is_refused_and_leaves_nothing(
    archive: tuple[Path, str], tmp_path: Path
) -> None:
    path, md5 = archive
    with running_server() as server:
        server.routes[ROUTE] = path.read_bytes()
        server.add_fault(ROUTE, wrong_bytes())
        bench = tiny_cifar(url=server.url + ROUTE, md5=md5)
        with pytest.raises(IntegrityError, match=f"expected md5 {md5}"):
            provide_data(bench, tmp_path / "cache", log=lambda m: None, backoff=0.01)
    folder = cached_path(bench.archive, tmp_path / "cache").parent
    assert not folder.exists() or list(folder.iterdir()) == []


def test_offline_without_the_archive_cached_says_so(tmp_path: Path) -> None:
    bench = tiny_cifar(md5="1" * 32)
    with pytest.raises(OfflineError, match=r"offline mode is on and cifar-10-binary\.tar\.gz"):
        provide_data(bench, tmp_path / "cache", offline=True)


def test_a_local_copy_named_by_the_environment_needs_no_download(
    archive: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CIFAR10_ENV, str(archive[0]))
    bench = tiny_cifar()
    assert bench.remote_files() == ()
    assert provide_data(bench, Path("/nonexistent/cache")) is bench
    assert bench.load_data().inputs.shape[0] == 5 * PER_BATCH + N_TEST


def test_without_data_the_benchmark_says_how_to_provide_it() -> None:
    with pytest.raises(CIFAR10Unavailable) as error:
        tiny_cifar().load_data()
    message = str(error.value)
    assert "not fetched yet" in message and CIFAR10_ENV in message and "\n" not in message


def test_collection_needs_no_data() -> None:
    declared = CIFAR10ResNet9().declared_forget_sets
    assert [(fs.name, fs.kind, len(fs.requests)) for fs in declared] == [
        ("knn500", "subpopulation", 1),
        ("random500", "random", 1),
        ("seq3x100", "subpopulation", 3),
    ]
