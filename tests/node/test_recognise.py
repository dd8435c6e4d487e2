"""``redlist-node recognise`` and recognised grades in ``GetAccount`` / ``redlist account``
(DESIGN 8.6): attestations of another town's log, verified against the town's config."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import pytest
from tests.builders import Town, create_log
from tests.node.serving import serve_in_subprocess
from tests.staff.running import redlist

from redlist.ledger import crypto, keyfile
from redlist.ledger.attestation import Attestation, sign_attestation
from redlist.ledger.note.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.recognitionstore import (
    RECOGNITION_ENV_NAME,
    Recognition,
    RecognitionStore,
)
from redlist.node.cli import main as node_main
from redlist.node.configfile import load_config_file
from redlist.node.recognised import RecognisedGrades

RUSHAN = NoteSigner("rushan.example/log", crypto.SigningKey.from_seed(b"\x11" * 32))
JUXIAN = NoteSigner("juxian.example/log", crypto.SigningKey.from_seed(b"\x12" * 32))
AUDITOR = NoteSigner("county-audit", crypto.SigningKey.from_seed(b"\x13" * 32))
ROOT = bytes(range(32))
DAY = 86_400


def checkpoint(size: int = 500, log: NoteSigner = RUSHAN) -> SignedCheckpoint:
    return sign_checkpoint(Checkpoint(log.name, size, ROOT), log)


def attestation_file(
    directory: Path,
    name: str,
    *,
    account: str = "rs-0042",
    grade: str = "AA",
    score: int = 1035,
    size: int = 500,
    expires: int | None = None,
    signer: NoteSigner = AUDITOR,
    log: NoteSigner = RUSHAN,
    signed: SignedCheckpoint | None = None,
) -> Path:
    expires = int(time.time()) + 30 * DAY if expires is None else expires
    signed = signed or checkpoint(size, log)
    attestation = Attestation(log.name, account, score, grade, size, ROOT, expires)
    path = directory / name
    path.write_bytes(sign_attestation(attestation, signed, signer).to_bytes())
    return path


CONFIG = """\
listen = "127.0.0.1:0"

[recognition]
auditors = ["audit.pem.pub"]

[recognition.towns."rushan.example/log"]
log_key = "{rushan}"
grades = {{ AAA = "AAA", AA = "AA", A = "A", B = "B" }}
"""


@pytest.fixture
def town(tmp_path: Path) -> Path:
    """A local town's data directory, the auditor's key files and the config file."""
    log = create_log(tmp_path / "data", Town.generate("wendeng.example/log"), setup=True)
    log.close()
    keyfile.write_key_files(tmp_path / "audit.pem", AUDITOR.key, AUDITOR.name)
    (tmp_path / "town.toml").write_text(CONFIG.format(rushan=RUSHAN.verifier().encode()))
    return tmp_path


def recognise(root: Path, *argv: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = ["recognise", "--data", str(root / "data"), "--config", str(root / "town.toml")]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = node_main([*args, *map(str, argv)])
        except SystemExit as exit_info:
            code = exit_info.code if isinstance(exit_info.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def stored(root: Path, account: str) -> tuple[Recognition, ...]:
    if not (root / "data" / RECOGNITION_ENV_NAME).exists():
        return ()
    store = RecognitionStore.open(root / "data")
    try:
        return store.for_account(account)
    finally:
        store.close()


def test_a_recognised_grade_is_shown_by_redlist_account(town: Path) -> None:
    path = attestation_file(town, "rs-0042.attestation.json")
    code, out, err = recognise(town, "--as", "wdg-0042", path)
    assert code == 0, err
    assert "account wdg-0042 holds grade AA here (grade AA in rushan.example/log as rs-0042" in out
    (record,) = stored(town, "wdg-0042")
    assert (record.origin, record.foreign_account, record.equivalent) == (
        RUSHAN.name,
        "rs-0042",
        "AA",
    )
    assert record.auditor == AUDITOR.verifier().encode()
    assert record.attestation == path.read_text()
    log_pub = str(town / "data" / "log.pub")
    with serve_in_subprocess(town / "data", output=town) as address:
        shown = redlist("account", "wdg-0042", "--node", address, "--log-key", log_pub)
        assert shown.code == 0, shown.err
        assert "Grades recognised from other towns" in shown.out
        row = next(line for line in shown.out.splitlines() if "rushan.example/log" in line)
        assert row.split()[:5] == ["rushan.example/log", "rs-0042", "AA", "(1035)", "AA"]
        assert AUDITOR.verifier().encode() in shown.out
        # A grade recognised while the node serves is listed at once.
        juxian_free = attestation_file(town, "b.json", account="rs-0042", grade="A", size=600)
        assert recognise(town, "--as", "wdg-0042", juxian_free)[0] == 0
        shown = redlist("account", "wdg-0042", "--node", address, "--json")
        assert shown.code == 0, shown.err
        (item,) = json.loads(shown.out)["recognised"]
        assert item["grade"] == "A" and item["equivalent"] == "A" and item["tree_size"] == 600
        assert item["expired"] is False
        assert item["origin"] == RUSHAN.name and item["foreign_account"] == "rs-0042"
        # Another account has none.
        other = redlist("account", "wdg-0001", "--node", address, "--json")
        assert json.loads(other.out)["recognised"] == []


def test_without_as_the_account_ids_are_the_same(town: Path) -> None:
    path = attestation_file(town, "a.json", account="shared-7")
    assert recognise(town, path)[0] == 0
    assert [item.account for item in stored(town, "shared-7")] == ["shared-7"]


def test_an_equivalence_table_maps_their_grades_onto_ours(town: Path) -> None:
    config = town / "town.toml"
    config.write_text(
        config.read_text().replace('AAA = "AAA", AA = "AA"', 'AAA = "AA", "优秀" = "AAA"')
    )
    assert recognise(town, "--as", "wdg-9", attestation_file(town, "a.json", grade="优秀"))[0] == 0
    assert [item.equivalent for item in stored(town, "wdg-9")] == ["AAA"]


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("expired", "[expired]"),
        ("stranger", "which is not a trusted auditor"),
        ("other-town", "grades of log juxian.example/log are not recognised here"),
        ("no-equivalent", "grade 'C' of log rushan.example/log has no equivalent here"),
        ("forged-checkpoint", "[log-signature]"),
        ("mismatch", "[checkpoint]"),
        ("altered", "[signature]"),
        ("missing", "does not exist [format]"),
        ("not-json", "[format]"),
    ],
)
def test_a_bad_attestation_is_refused_and_nothing_is_written(
    town: Path, case: str, fragment: str
) -> None:
    impostor = NoteSigner(RUSHAN.name, crypto.SigningKey.from_seed(b"\x99" * 32))
    builders = {
        "expired": lambda: attestation_file(town, "f.json", expires=int(time.time()) - 1),
        "stranger": lambda: attestation_file(
            town, "f.json", signer=NoteSigner(AUDITOR.name, crypto.SigningKey.generate())
        ),
        "other-town": lambda: attestation_file(town, "f.json", log=JUXIAN),
        "no-equivalent": lambda: attestation_file(town, "f.json", grade="C"),
        "forged-checkpoint": lambda: attestation_file(
            town, "f.json", signed=checkpoint(500, impostor)
        ),
        "mismatch": lambda: _mismatched(town),
        "altered": lambda: _altered(town),
        "missing": lambda: town / "missing.json",
        "not-json": lambda: _written(town / "f.json", b"not json"),
    }
    path = builders[case]()
    code, out, err = recognise(town, "--as", "wdg-0042", path)
    assert code == 1, out + err
    assert f"refused {path}: " in err and fragment in err, err
    assert "1 of 1 file(s) refused; nothing recorded for them." in err
    assert not (town / "data" / RECOGNITION_ENV_NAME).exists()


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mismatched(town: Path) -> Path:
    path = attestation_file(town, "f.json")
    value = json.loads(path.read_text())
    value["checkpoint"] = checkpoint(501).note
    return _written(path, (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode())


def _altered(town: Path) -> Path:
    path = attestation_file(town, "f.json")
    return _written(path, path.read_bytes().replace(b"grade AA", b"grade AAA"))


def test_good_files_are_recorded_beside_refused_ones(town: Path) -> None:
    good = attestation_file(town, "good.json", account="rs-1")
    bad = attestation_file(town, "bad.json", account="rs-2", grade="C")
    code, out, err = recognise(town, good, bad)
    assert code == 1
    assert "recognised" in out and "refused" in err
    assert len(stored(town, "rs-1")) == 1
    assert stored(town, "rs-2") == ()


def test_an_older_attestation_does_not_replace_a_newer_one(town: Path) -> None:
    newer = attestation_file(town, "new.json", size=600, grade="AAA")
    older = attestation_file(town, "old.json", size=500, grade="B")
    assert recognise(town, "--as", "wdg-1", newer)[0] == 0
    code, _, err = recognise(town, "--as", "wdg-1", older)
    assert code == 1
    assert "later than this one (500)" in err
    assert [item.grade for item in stored(town, "wdg-1")] == ["AAA"]
    # The same attestation again is fine (a re-run).
    assert recognise(town, "--as", "wdg-1", newer)[0] == 0


def test_an_expired_recognition_is_listed_as_expired(town: Path) -> None:
    assert recognise(town, "--as", "wdg-1", attestation_file(town, "a.json"))[0] == 0
    (record,) = stored(town, "wdg-1")
    grades = RecognisedGrades(town / "data", clock=lambda: record.expires)
    try:
        (message,) = grades.messages("wdg-1")
        assert message.expired is True and message.equivalent == "AA"
    finally:
        grades.close()


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ('listen = "127.0.0.1:0"\n', "has no [recognition] table"),
        ("[recognition]\nauditors = []\n", "non-empty list"),
        ('[recognition]\nauditors = ["audit.pem.pub"]\nextra = 1\n', "unknown key(s) 'extra'"),
        ('[recognition]\nauditors = ["missing.pub"]\n', "neither a file nor a key string"),
        (
            '[recognition]\nauditors = ["audit.pem.pub"]\n[recognition.towns."rushan.example/log"]'
            '\ngrades = { AA = "Z" }\n',
            "maps to 'Z', which is not a grade of this town",
        ),
        (
            '[recognition]\nauditors = ["audit.pem.pub"]\n[recognition.towns."juxian.example/log"]'
            f'\nlog_key = "{RUSHAN.verifier().encode()}"\ngrades = {{ AA = "AA" }}\n',
            "is the key of log 'rushan.example/log'",
        ),
    ],
)
def test_a_config_that_cannot_be_used_stops_the_command(
    town: Path, config: str, fragment: str
) -> None:
    (town / "town.toml").write_text(config)
    code, _, err = recognise(town, attestation_file(town, "a.json"))
    assert code == 2, err
    assert fragment in err
    assert not (town / "data" / RECOGNITION_ENV_NAME).exists()


def test_serve_reads_a_config_with_a_recognition_table(town: Path) -> None:
    values = load_config_file(town / "town.toml")
    recognition = values["recognition"]
    assert recognition.auditors == (AUDITOR.verifier(),)
    assert recognition.towns[RUSHAN.name].log_key == RUSHAN.verifier()
