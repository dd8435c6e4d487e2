"""Settings every test shares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def staff_configuration(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The staff tools' configuration directory (their known-logs file), away from the
    user's own: every ``redlist`` run by the tests, in process or not, uses this one."""
    directory = tmp_path_factory.mktemp("config")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(directory))
        yield directory


@pytest.fixture(scope="session", autouse=True)
def english_locale() -> Iterator[None]:
    """Messages in English whatever the developer's locale (docs/adr/0034): the tests
    read the programs' English output. A test of the Chinese sets its own."""
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
            patch.delenv(variable, raising=False)
        patch.setenv("LANG", "C.UTF-8")
        yield
