"""Settings every test shares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redlist.ledger import i18n


@pytest.fixture(scope="module", autouse=True)
def staff_configuration(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The staff tools' configuration directory (their known-logs file), away from the
    user's own and from other modules': every ``redlist`` run by a module's tests and
    fixtures, in process or not, uses its module's.

    The known-logs file remembers a log key under the node's address, and the nodes the
    tests serve take whatever port is free: a town served later on a port an earlier
    town had must not meet the earlier town's key (a served town keeps its own besides:
    tests/staff/towns.py)."""
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


@pytest.fixture(autouse=True)
def messages_in_english_after_each_test() -> Iterator[None]:
    """A test that runs a command in process with ``--lang zh_CN`` (or asks for Chinese
    itself) switches the process's messages; the next test reads English again, in
    whatever order the tests run."""
    yield
    if i18n.language() != i18n.ENGLISH:
        i18n.setup(i18n.ENGLISH)
