"""Which log key a node must prove: ``--log-key``, or the one remembered for its address."""

from __future__ import annotations

from pathlib import Path

import pytest

from redlist.ledger.errors import KeyFileError
from redlist.ledger.note.keys import NoteSigner
from redlist.staff import knownlogs
from redlist.staff.knownlogs import KnownLogs, choose_log_key

ADDRESS = "127.0.0.1:7420"
TOWN = NoteSigner.generate("dongguan.example/redlist").verifier()
OTHER = NoteSigner.generate("dongguan.example/redlist").verifier()


def test_the_file_lives_in_the_configuration_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert knownlogs.default_path() == tmp_path / "redlist" / "known-logs"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert knownlogs.default_path() == tmp_path / "home" / ".config" / "redlist" / "known-logs"


def test_a_given_key_is_remembered_only_on_first_contact(tmp_path: Path) -> None:
    known = KnownLogs(tmp_path / "redlist" / "known-logs")
    first = choose_log_key(ADDRESS, TOWN.encode(), known)
    assert (first.log_key, first.remember, first.source) == (TOWN, True, "given with --log-key")
    assert not known.path.exists()  # remembering is the caller's, after the node proved it
    known.remember(ADDRESS, TOWN)
    known.remember("node.example:7420", OTHER)
    again = choose_log_key(ADDRESS, None, known)
    assert (again.log_key, again.remember) == (TOWN, False)
    assert str(known.path) in again.source
    assert choose_log_key(ADDRESS, TOWN.encode(), known).remember is False
    lines = known.path.read_text(encoding="utf-8").splitlines()
    assert lines[-2:] == [f"{ADDRESS} {TOWN.encode()}", f"node.example:7420 {OTHER.encode()}"]
    assert all(line.startswith("#") for line in lines[:-2])


def test_a_log_key_file_is_read_like_the_verifiers(tmp_path: Path) -> None:
    pub = tmp_path / "log.pub"
    pub.write_text(TOWN.encode() + "\n", encoding="utf-8")
    choice = choose_log_key(ADDRESS, str(pub), KnownLogs(tmp_path / "known-logs"))
    assert choice.log_key == TOWN
    with pytest.raises(KeyFileError, match="does not exist"):
        choose_log_key(ADDRESS, str(tmp_path / "nothing.pub"), KnownLogs(tmp_path / "k"))


def test_an_unknown_node_needs_the_key_and_says_where_to_get_it(tmp_path: Path) -> None:
    known = KnownLogs(tmp_path / "known-logs")
    with pytest.raises(KeyFileError) as refused:
        choose_log_key(ADDRESS, None, known)
    message = refused.value.diagnostics()
    assert f"does not know the log key of the node at {ADDRESS}" in message
    assert "--log-key" in message and "town admin" in message and str(known.path) in message


def test_another_key_for_a_remembered_node_is_refused(tmp_path: Path) -> None:
    known = KnownLogs(tmp_path / "known-logs")
    known.remember(ADDRESS, TOWN)
    with pytest.raises(KeyFileError) as refused:
        choose_log_key(ADDRESS, OTHER.encode(), known)
    message = refused.value.diagnostics()
    assert OTHER.describe() in message and TOWN.describe() in message
    assert f"line 3 of {known.path}" in message
    assert "Nothing was sent" in message and "delete that line" in message


def test_a_damaged_line_names_itself(tmp_path: Path) -> None:
    known = KnownLogs(tmp_path / "known-logs")
    known.path.write_text(f"# comment\n\n{ADDRESS} not-a-key\n", encoding="utf-8")
    with pytest.raises(KeyFileError, match=r"line 3 of the known-logs file .* is damaged"):
        known.find(ADDRESS)
