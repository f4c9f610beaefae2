"""Package discovery for the wheel; everything else about the build lives in pyproject.toml.

pyproject.toml can either list packages by hand (one was once forgotten, and the README's
first command crashed after a regular install) or find them under one directory. Neither
fits this layout: the plugin lives in ``pytest_unlearn/`` and two top-level folders ship
inside it, ``conformance/`` as ``pytest_unlearn.conformance`` and ``fixtures/`` as
``pytest_unlearn.fixtures``. So every package is discovered here, in all three folders, and
``tests/test_packaging.py`` checks the built wheel against the source tree.
"""

from setuptools import find_packages, setup

#: Top-level folders shipped as subpackages of the plugin: folder -> package name.
MAPPED_FOLDERS = {
    "conformance": "pytest_unlearn.conformance",
    "fixtures": "pytest_unlearn.fixtures",
}


def discover() -> tuple[list[str], dict[str, str]]:
    """Every package of the distribution, and where each mapped one lives."""
    packages = find_packages(include=["pytest_unlearn", "pytest_unlearn.*"])
    package_dir: dict[str, str] = {}
    for folder, package in MAPPED_FOLDERS.items():
        packages.append(package)
        package_dir[package] = folder
        for sub in find_packages(where=folder):
            packages.append(f"{package}.{sub}")
            package_dir[f"{package}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    return sorted(packages), package_dir


if __name__ == "__main__":  # how setuptools runs it; importing it only discovers
    packages, package_dir = discover()
    setup(
        packages=packages,
        package_dir=package_dir,
        package_data={"pytest_unlearn": ["py.typed"], "pytest_unlearn.verdicts": ["*.json"]},
    )
