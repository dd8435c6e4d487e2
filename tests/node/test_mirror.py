"""``redlist-node mirror`` (DESIGN 8.3): catch-up in steps, live follow, cosignatures,
the read API on the copy; real primaries and mirrors on 127.0.0.1:0 with real LMDB."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio
from tests.builders import SMALL_ID_INDEX, Town, build_town_log, id_index_shape, submit_request
from tests.node.mirroring import mirroring, serving
from tests.rawstore import META_ID_RUNS, raw_tables

from redlist.ledger.crypto import SigningKey
from redlist.ledger.entry import Envelope, Leaf, decode_body
from redlist.ledger.errors import FormatError, MirrorRefusal, StateDamageError, StoreError
from redlist.ledger.fullcheck import check_full
from redlist.ledger.log import Log
from redlist.ledger.mirrorlog import MirrorLog
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.note.cosignature import verify_cosignature
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.sigschedule import SignatureScheduler
from redlist.ledger.store import ENV_DIR_NAME, LmdbStore
from redlist.node.mirrorcfg import load_mirror_config, resolve_mirror_settings
from redlist.node.serveroptions import ServerOptions
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

MIRROR = NoteSigner("juxian-mirror", SigningKey.generate())


@pytest.fixture
def town() -> Town:
    return Town.generate()


def leaves_of(log: Log) -> list[bytes]:
    return [leaf for _seq, leaf in log.leaves(0, log.size)]


async def submit(address: str, envelopes: list[bytes]) -> None:
    """Submit through the primary node (its Follow streams learn of the commit)."""
    async with aio.insecure_channel(address) as channel:
        await ledger_pb2_grpc.LedgerStub(channel).Submit(submit_request(envelopes))


def test_a_mirror_catches_up_from_zero_in_steps_then_follows_and_cosigns(
    tmp_path: Path, town: Town
) -> None:
    build_town_log(tmp_path / "primary", town)

    async def main() -> None:
        with Log.open(tmp_path / "primary") as log:
            async with (
                serving(log) as upstream,
                mirroring(
                    tmp_path / "mirror", upstream, log.verifier_key, signer=MIRROR
                ) as mirrored,
            ):
                await mirrored.wait_for(32)
                # Steps of at most 5 entries (more when a commit was larger), at the log's commits.
                sizes = [size for size in range(1, 33) if mirrored.mirror.log.checkpoint_at(size)]
                assert sizes == [1, 11, 15, 19, 23, 27, 32]
                await submit(upstream, [town.award("resident-9", "clean-pond")])
                await mirrored.wait_for(33)
                assert leaves_of(mirrored.mirror.log) == leaves_of(log)
                async with aio.insecure_channel(mirrored.address) as channel:
                    stub = ledger_pb2_grpc.LedgerStub(channel)
                    note = (await stub.GetCheckpoint(pb.GetCheckpointRequest())).checkpoint
                    served = SignedCheckpoint(note, log.verifier_key)
                    assert served.text == log.checkpoint().text
                    verify_cosignature(served, MIRROR.cosignature_verifier())
                    with pytest.raises(aio.AioRpcError) as refused:
                        await stub.Submit(submit_request([town.award("r", "litter")]))
                    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                    assert "mirror of log" in (refused.value.details() or "")
                    assert upstream in (refused.value.details() or "")

    asyncio.run(main())


def test_a_stopped_mirror_resumes_from_where_it_stopped(tmp_path: Path, town: Town) -> None:
    build_town_log(tmp_path / "primary", town)

    async def main() -> None:
        with Log.open(tmp_path / "primary") as log:
            async with serving(log) as upstream:
                async with mirroring(tmp_path / "mirror", upstream, log.verifier_key) as mirrored:
                    await mirrored.wait_for(32)
                # The mirror is down while the log grows.
                awards = [town.award(f"resident-{n}", "clean-pond") for n in range(12)]
                await submit(upstream, awards)
                async with mirroring(tmp_path / "mirror", upstream, log.verifier_key) as mirrored:
                    await mirrored.wait_for(44)
                    assert leaves_of(mirrored.mirror.log) == leaves_of(log)

    asyncio.run(main())


class CountingExecutor(ThreadPoolExecutor):
    """A thread pool that counts the signatures handed to it (``SignatureScheduler``)."""

    def __init__(self) -> None:
        super().__init__(2)
        self.signatures = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.signatures += len(args[0])
        return super().submit(fn, *args, **kwargs)


def test_a_step_is_prepared_while_the_one_before_is_not_yet_stored(
    tmp_path: Path, town: Town
) -> None:
    build_town_log(tmp_path / "primary", town)
    with Log.open(tmp_path / "primary") as log:
        leaves = leaves_of(log)
        at_1, at_11 = log.checkpoint_at(1), log.checkpoint_at(11)
        assert at_1 is not None and at_11 is not None
        key = log.verifier_key
    counting = CountingExecutor()
    with (
        counting,
        SignatureScheduler(2, executor=counting) as scheduler,
        MirrorLog.open(tmp_path / "mirror", key) as mirror,
    ):
        known: dict[bytes, bytes] = {}
        genesis = mirror.prepare(leaves[:1], scheduler, known=known)
        # The staff keys (entries 1 to 4) are signed by the admin key of the genesis,
        # which is not stored yet: ``known`` carries it from the step before.
        staff = mirror.prepare(leaves[1:11], scheduler, first=1, known=known)
        assert counting.signatures == 22  # every signature of entries 1 to 10, ahead
        assert len(known) == 5  # the admin key and the four staff keys
        with pytest.raises(MirrorRefusal) as refused:
            mirror.store(staff, at_11)  # not next: the genesis is not stored
        assert refused.value.check == "seq"
        assert mirror.size == 0
        mirror.store(genesis, at_1)
        mirror.store(staff, at_11)
        assert leaves_of(mirror.log) == leaves[:11]


def test_mirror_settings_are_checked(tmp_path: Path, town: Town) -> None:
    key = town.log_signer.verifier().encode()
    config = tmp_path / "mirrors.toml"
    config.write_text(
        f'chunk_entries = 0\n[[mirror]]\ndata = "a"\nfrom = "h:1"\nlog_key = "{key}"\n'
        'listen = "127.0.0.1:7431"\n'
    )
    with pytest.raises(FormatError, match="chunk_entries"):
        resolve_mirror_settings(load_mirror_config(config), {})
    config.write_text('colour = "red"\n')
    with pytest.raises(FormatError, match="unknown setting 'colour'"):
        load_mirror_config(config)
    config.write_text('[[mirror]]\ndata = "a"\nfrom = "h:1"\n')
    with pytest.raises(FormatError, match=r"exactly 'data', 'from', 'log_key' and 'listen'"):
        load_mirror_config(config)
    # Which table, and what is wrong with it: a typo is named.
    whole = f'data = "a"\nfrom = "h:1"\nlog_key = "{key}"\nlisten = "127.0.0.1:7431"\n'
    for table, said in [
        (whole.replace("from =", "form ="), "number 2: unknown setting 'form'"),
        (whole.replace('listen = "127.0.0.1:7431"\n', ""), "number 2: 'listen' missing"),
        (whole.replace('data = "a"', "data = 7"), "number 2: 'data' must be text"),
    ]:
        config.write_text(f"[[mirror]]\n{whole}[[mirror]]\n{table}")
        with pytest.raises(FormatError, match=said):
            load_mirror_config(config)
    with pytest.raises(FormatError, match="all four"):
        resolve_mirror_settings({}, {"data": tmp_path, "upstream": "h:1"})
    with pytest.raises(FormatError, match="no log to mirror"):
        resolve_mirror_settings({}, {})
    same = {"data": tmp_path / "a", "upstream": "h:1", "log_key": key, "listen": "127.0.0.1:7431"}
    config.write_text(
        f'[[mirror]]\ndata = "b"\nfrom = "h:2"\nlog_key = "{key}"\nlisten = "127.0.0.1:7432"\n'
    )
    with pytest.raises(FormatError, match="same log"):
        resolve_mirror_settings(load_mirror_config(config), same)
    settings = resolve_mirror_settings({}, same)
    assert settings.logs[0].log_key == town.log_signer.verifier()
    assert settings.limits().chunk_entries == 4096 and settings.peer_tls() is None


def test_a_mirror_s_listener_takes_serve_s_settings(tmp_path: Path, town: Town) -> None:
    key = town.log_signer.verifier().encode()
    config = tmp_path / "conf" / "mirrors.toml"
    config.parent.mkdir()
    config.write_text(
        'tls_cert = "tls/node.pem"\ntls_key = "tls/node.key"\ntls_client_ca = "/pki/staff.pem"\n'
        'peer_ca = "tls/towns.pem"\npeer_names = ["rushan"]\nmax_streams = 40\n'
        "rate_limit = 20\nstream_write_seconds = 5\n"
        f'[[mirror]]\ndata = "a"\nfrom = "h:1"\nlog_key = "{key}"\nlisten = "127.0.0.1:7431"\n'
    )
    settings = resolve_mirror_settings(load_mirror_config(config), {"max_calls": 64})
    assert settings.tls_cert == tmp_path / "conf" / "tls" / "node.pem"
    assert settings.tls_client_ca == Path("/pki/staff.pem")
    assert settings.peer_names == ("rushan",)
    assert (settings.max_streams, settings.max_calls, settings.rate_limit) == (40, 64, 20.0)
    options = ServerOptions.for_listener(settings)
    assert options.tls is not None and options.tls.mode == "mutual-tls"
    assert options.peer_names == frozenset({"rushan"})
    assert options.call_limits.max_streams == 40 and options.call_limits.stream_write_seconds == 5
    assert options.rate_limit is not None and options.rate_limit.per_second == 20.0
    # The checks are serve's: peer names need mutual TLS, a certificate needs its key.
    one = {"data": tmp_path / "a", "upstream": "h:1", "log_key": key, "listen": "h:2"}
    with pytest.raises(FormatError, match=r"'peer_names'.*mutual TLS"):
        resolve_mirror_settings({}, {**one, "peer_names": ["rushan"]})
    with pytest.raises(FormatError, match="'tls_cert' and 'tls_key'"):
        resolve_mirror_settings({}, {**one, "tls_cert": tmp_path / "c.pem"})
    config.write_text('peer_names = "rushan"\n')
    with pytest.raises(FormatError, match="'peer_names' must be a list"):
        load_mirror_config(config)


def test_a_primary_s_data_directory_is_not_a_mirror_s(tmp_path: Path, town: Town) -> None:
    build_town_log(tmp_path / "primary", town)
    with pytest.raises(StoreError, match="town's own data directory"):
        MirrorLog.open(tmp_path / "primary", town.log_signer.verifier())
    MirrorLog.open(tmp_path / "mirror", town.log_signer.verifier()).close()
    other = Town.generate()
    with pytest.raises(StoreError, match="mirrors the log of key"):
        MirrorLog.open(tmp_path / "mirror", other.log_signer.verifier())


def test_a_refused_mirror_directory_is_left_as_it_was(tmp_path: Path, town: Town) -> None:
    """A directory holding the ledger of one log (its ``log.pub`` lost) is refused for
    another log's key without writing that key's ``log.pub``, so the right key still
    opens it."""
    build_town_log(tmp_path / "primary", town)
    copy = tmp_path / "copy"
    (copy / ENV_DIR_NAME).mkdir(parents=True)
    data_file = tmp_path / "primary" / ENV_DIR_NAME / "data.mdb"
    (copy / ENV_DIR_NAME / "data.mdb").write_bytes(data_file.read_bytes())
    before = sorted(path.name for path in copy.iterdir())
    with pytest.raises(StoreError, match="mirrors the log of key"):
        MirrorLog.open(copy, Town.generate().log_signer.verifier())
    assert sorted(path.name for path in copy.iterdir()) == before
    with MirrorLog.open(copy, town.log_signer.verifier()) as mirror:
        assert mirror.size == 32
    assert (copy / "log.pub").read_text().strip() == town.log_signer.verifier().encode()


def test_a_mirror_s_own_entry_id_index_makes_runs_and_merges_as_it_copies(
    tmp_path: Path, town: Town
) -> None:
    """A mirror appends through the same index as the primary: with a small shape its
    copy of 44 entries fills level 0 and merges runs, its lookups build the runs'
    filters, and every id is found at its seq."""

    async def main() -> None:
        with Log.open(tmp_path / "primary") as log:
            async with (
                serving(log) as upstream,
                mirroring(tmp_path / "mirror", upstream, log.verifier_key) as mirrored,
            ):
                await mirrored.wait_for(32)
                awards = [town.award(f"resident-{n}", "clean-pond") for n in range(12)]
                await submit(upstream, awards)
                await mirrored.wait_for(44)
                copy = mirrored.mirror.log
                # Its new ids were looked up in a snapshot first, which built the filters
                # of its larger runs (ADR 0056); nothing else has read its index yet.
                assert copy.id_filter_bytes > 0
                for seq, leaf in enumerate(leaves_of(copy)):
                    envelope = Envelope.from_bytes(Leaf.from_bytes(leaf).envelope)
                    assert copy.entry(decode_body(envelope.body).id) == (seq, leaf)

    with id_index_shape(SMALL_ID_INDEX):
        build_town_log(tmp_path / "primary", town)
        asyncio.run(main())
    store = LmdbStore.open(tmp_path / "mirror" / ENV_DIR_NAME, readonly=True)
    try:
        with store.read() as reader:
            report = check_full(reader)
            assert reader.counts().id_runs == 42  # all but level 0's newest 2
    finally:
        store.close()
    assert report.ok, report.summary()


def test_a_damaged_entry_id_index_stops_the_mirror_s_writes(tmp_path: Path, town: Town) -> None:
    """A step's ids are looked up in a snapshot before its write (ADR 0056): a damaged
    run list met there refuses the step, writes nothing and stops the mirror's writes,
    as the write transaction would."""
    with id_index_shape(SMALL_ID_INDEX):
        build_town_log(tmp_path / "primary", town)
    mirror_dir = tmp_path / "mirror"
    with Log.open(tmp_path / "primary") as log, SignatureScheduler(1) as scheduler:
        leaves = leaves_of(log)
        kept = [size for size in range(1, log.size + 1) if log.checkpoint_at(size) is not None]
        first, second = kept[-3], kept[-1]
        with MirrorLog.open(mirror_dir, log.verifier_key) as mirror:
            mirror.extend(leaves[:first], log.checkpoint_at(first), scheduler)
        with raw_tables(mirror_dir / ENV_DIR_NAME) as tables:
            stored = tables.get("meta", META_ID_RUNS)
            tables.put("meta", META_ID_RUNS, stored[:-1] + bytes([stored[-1] ^ 1]))
        with MirrorLog.open(mirror_dir, log.verifier_key) as mirror:
            with pytest.raises(StateDamageError, match="id_runs"):
                mirror.extend(leaves[first:second], log.checkpoint_at(second), scheduler)
            with pytest.raises(StateDamageError):
                mirror._store.check_writable()
            assert mirror.size == first
