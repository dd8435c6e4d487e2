"""``redlist keygen`` and the key files it writes (redlist.ledger.keyfile)."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from redlist.ledger import crypto, keyfile
from redlist.ledger.errors import KeyFileError
from redlist.ledger.note.keys import ALG_COSIGNATURE_V1, ALG_ED25519, VerifierKey
from redlist.staff.cli import main

NAME = "Wang Fang (grid, Dongguan village)"


def printed(output: str) -> dict[str, str]:
    """The ``label: value`` lines keygen prints."""
    fields = {}
    for line in output.splitlines():
        label, _, value = line.partition(":")
        fields[label] = value.strip()
    return fields


def keygen(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["keygen", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keygen_writes_private_key_readable_by_owner_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "wang.pem"
    code, _, _ = keygen(capsys, "--out", str(out), "--name", NAME)
    assert code == 0
    assert mode(out) == 0o600
    assert out.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert mode(keyfile.public_path(out)) == 0o644


def test_printed_key_id_and_public_key_match_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "wang.pem"
    _, output, _ = keygen(capsys, "--out", str(out), "--name", NAME)
    key = crypto.SigningKey.from_pem(out.read_bytes())
    fields = printed(output)
    assert fields["public key"] == key.public.hex()
    assert fields["key id"] == crypto.key_id(key.public).hex()
    assert fields["name"] == NAME


def test_public_file_carries_name_and_reads_as_the_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "wang.pem"
    keygen(capsys, "--out", str(out), "--name", NAME)
    key = keyfile.read_signing_key(out)
    public_file = tmp_path / "wang.pem.pub"
    text = public_file.read_text(encoding="utf-8")
    assert f"# name: {NAME}\n" in text
    assert f"# key id: {key.key_id.hex()}\n" in text
    assert "PRIVATE" not in text
    assert keyfile.read_public_key(public_file) == key.public
    assert keyfile.read_public_key(out) == key.public  # a private key file works too


def test_two_runs_make_different_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keygen(capsys, "--out", str(tmp_path / "a.pem"), "--name", "A")
    keygen(capsys, "--out", str(tmp_path / "b.pem"), "--name", "B")
    assert (tmp_path / "a.pem").read_bytes() != (tmp_path / "b.pem").read_bytes()


def test_refuses_to_overwrite_an_existing_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "wang.pem"
    keygen(capsys, "--out", str(out), "--name", NAME)
    before = out.read_bytes(), keyfile.public_path(out).read_bytes()
    code, output, error = keygen(capsys, "--out", str(out), "--name", "Someone else")
    assert code == 2
    assert output == ""
    assert error.startswith("error: ")
    assert "already exists" in error and "--force" in error
    assert (out.read_bytes(), keyfile.public_path(out).read_bytes()) == before


def test_refuses_when_only_the_public_file_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "wang.pem"
    keyfile.public_path(out).write_text("someone's public key\n")
    code, _, error = keygen(capsys, "--out", str(out), "--name", NAME)
    assert code == 2
    assert "wang.pem.pub already exists" in error
    assert not out.exists()
    assert keyfile.public_path(out).read_text() == "someone's public key\n"


def test_force_replaces_the_key_and_keeps_it_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "wang.pem"
    keygen(capsys, "--out", str(out), "--name", NAME)
    old = keyfile.read_signing_key(out)
    out.chmod(0o644)  # even a loosened file ends up private again
    code, output, _ = keygen(capsys, "--out", str(out), "--name", NAME, "--force")
    assert code == 0
    new = keyfile.read_signing_key(out)
    assert new != old
    assert printed(output)["key id"] == new.key_id.hex()
    assert mode(out) == 0o600
    assert keyfile.read_public_key(keyfile.public_path(out)) == new.public
    # No temporary file is left behind.
    assert {path.name for path in tmp_path.iterdir()} == {"wang.pem", "wang.pem.pub"}


@pytest.mark.parametrize("name", ["", "   ", "two\nlines", "x" * (keyfile.MAX_NAME_LENGTH + 1)])
def test_unusable_name_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, _, error = keygen(capsys, "--out", str(tmp_path / "k.pem"), "--name", name)
    assert code == 2
    assert "name" in error
    assert list(tmp_path.iterdir()) == []


def test_missing_directory_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no-such-dir" / "k.pem"
    code, _, error = keygen(capsys, "--out", str(out), "--name", NAME)
    assert code == 2
    assert error == (
        f"error: cannot write {out}: the directory {out.parent} does not exist (create it first)\n"
    )


@pytest.mark.parametrize("out", [".", "..", "./"])
def test_out_naming_the_current_or_parent_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, out: str
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, error = keygen(capsys, "--out", out, "--name", NAME)
    assert code == 2
    assert error.startswith("error: --out ") and "names a directory" in error
    assert list(tmp_path.iterdir()) == []


def test_out_naming_a_directory_is_refused_even_with_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    for extra in ([], ["--force"]):
        code, _, error = keygen(capsys, "--out", str(folder), "--name", NAME, *extra)
        assert code == 2
        assert error == (
            f"error: {folder} is a directory; --out names the key file to create, "
            f"e.g. {folder / 'wang.pem'}\n"
        )
    assert list(folder.iterdir()) == []
    assert {path.name for path in tmp_path.iterdir()} == {"keys"}


def test_out_with_a_name_too_long_for_the_file_system(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, error = keygen(capsys, "--out", str(tmp_path / ("k" * 300)), "--name", NAME)
    assert code == 2
    assert error.startswith("error: cannot write ") and "too long" in error


def test_missing_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["keygen"], ["keygen", "--out", "k.pem"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "usage: redlist" in capsys.readouterr().err


def test_reading_key_files_names_the_problem(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(KeyFileError, match=r"missing\.pem does not exist"):
        keyfile.read_signing_key(missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    with pytest.raises(KeyFileError, match=r"garbage\.pem: not a PEM private key"):
        keyfile.read_signing_key(garbage)
    with pytest.raises(KeyFileError, match=r"garbage\.pem"):
        keyfile.read_public_key(garbage)


def test_a_public_key_file_given_for_signing_says_which_file_to_use(tmp_path: Path) -> None:
    private = tmp_path / "wang.pem"
    keyfile.write_key_files(private, crypto.SigningKey.generate(), NAME)
    public = keyfile.public_path(private)
    with pytest.raises(KeyFileError) as refused:
        keyfile.read_signing_key(public)
    assert refused.value.diagnostics() == (
        f"{public} holds a public key; signing needs the private key file "
        "(the one keygen wrote without '.pub')"
    )


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "redlist"
    out = tmp_path / "admin.pem"
    result = subprocess.run(
        [str(script), "keygen", "--out", str(out), "--name", "Liu Jun (admin)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    key = keyfile.read_signing_key(out)
    assert printed(result.stdout)["key id"] == key.key_id.hex()


def test_a_cosigners_key_strings_are_printed_for_a_note_key_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A witness's or auditor's key: the strings other towns list, for exactly this key."""
    out = tmp_path / "witness.pem"
    _, output, _ = keygen(capsys, "--out", str(out), "--name", "rushan-witness")
    key = crypto.SigningKey.from_pem(out.read_bytes())
    fields = printed(output)
    cosigner = VerifierKey.parse(fields["as a witness or mirror"])
    signer = VerifierKey.parse(fields["as an auditor"])
    assert (cosigner.name, cosigner.public, cosigner.algorithm) == (
        "rushan-witness",
        key.public,
        ALG_COSIGNATURE_V1,
    )
    assert (signer.public, signer.algorithm) == (key.public, ALG_ED25519)


def test_a_staff_name_gets_no_key_strings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, output, _ = keygen(capsys, "--out", str(tmp_path / "wang.pem"), "--name", NAME)
    assert "as a witness" not in output and "as an auditor" not in output


def test_a_name_typed_with_a_trailing_space_is_the_name_without_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The name is trimmed for the files and the log; the key strings an auditor or a
    witness uses are made from the same trimmed name, not left out."""
    code, out, _ = keygen(capsys, "--out", str(tmp_path / "a.pem"), "--name", "county-audit ")
    assert code == 0
    shown = printed(out)
    assert shown["name"] == "county-audit"
    assert shown["as an auditor"].startswith("county-audit+")
    assert shown["as a witness or mirror"].startswith("county-audit+")
