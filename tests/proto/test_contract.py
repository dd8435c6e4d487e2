"""The protocol's contracts as data: refusal details, limits and the errors built from them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redlist.ledger.errors import (
    BatchError,
    CheckError,
    ConflictError,
    FormatError,
    RuleViolation,
    SourceError,
    VerificationError,
)
from redlist.proto.contract import (
    CHECK_KEY,
    INDEX_KEY,
    LIMIT_KEY,
    MAX_BATCH_CHECK,
    RETRY_AFTER_KEY,
    Limits,
    RefusalDetails,
)
from redlist.proto.errors import NodeError, NodeUnreachableError, WireError
from redlist.v1 import ledger_pb2 as pb

_optional_count = st.none() | st.integers(min_value=0, max_value=2**64 - 1)


@given(
    check=st.none() | st.from_regex(r"[a-z][a-z-]{0,30}", fullmatch=True),
    index=_optional_count,
    limit=_optional_count,
    retry_after_ms=_optional_count,
)
def test_refusal_details_survive_trailing_metadata(
    check: str | None, index: int | None, limit: int | None, retry_after_ms: int | None
) -> None:
    details = RefusalDetails(check, index, limit, retry_after_ms)
    assert RefusalDetails.from_metadata(details.to_metadata()) == details


def test_refusal_details_use_the_documented_keys() -> None:
    metadata = RefusalDetails("max-batch", 3, 10_000, 250).to_metadata()
    assert dict(metadata) == {
        "redlist-check": "max-batch",
        "redlist-index": "3",
        "redlist-limit": "10000",
        "redlist-retry-after-ms": "250",
    }
    assert tuple(key for key, _ in metadata) == (CHECK_KEY, INDEX_KEY, LIMIT_KEY, RETRY_AFTER_KEY)


@pytest.mark.parametrize("garbled", ["", "-1", "3.0", "0x10", "٣", "1" * 21, " 3"])
def test_garbled_numbers_in_metadata_are_ignored(garbled: str) -> None:
    details = RefusalDetails.from_metadata(
        [(INDEX_KEY, garbled), (LIMIT_KEY, garbled.encode()), ("other", "x")]
    )
    assert details == RefusalDetails()


def test_limits_convert_to_and_from_the_message() -> None:
    limits = Limits(max_batch=500, max_envelope_bytes=65_536, max_message_bytes=1 << 20)
    message = limits.to_message()
    assert isinstance(message, pb.Limits)
    assert Limits.from_message(pb.Limits.FromString(message.SerializeToString())) == limits


def test_a_request_fits_when_every_limit_holds() -> None:
    limits = Limits(max_batch=2, max_envelope_bytes=100, max_message_bytes=300)
    assert limits.request_fits([100, 100])
    assert not limits.request_fits([100, 100, 1])  # three envelopes
    assert not limits.request_fits([101])  # one too large
    assert not Limits(10, 200, 300).request_fits([150, 150])  # the request too large


def test_a_node_error_is_read_from_status_and_metadata() -> None:
    error = NodeError.from_status(
        "FAILED_PRECONDITION",
        "envelope 3: rule 'V99' is not in the catalogue [rule-inactive] ",
        [(CHECK_KEY, b"rule-inactive"), (INDEX_KEY, "3")],
        action="the award",
    )
    assert (error.check, error.message, error.index, error.code) == (
        "rule-inactive",
        "rule 'V99' is not in the catalogue",
        3,
        "FAILED_PRECONDITION",
    )
    assert error.diagnostics() == (
        "the node refused the award: rule 'V99' is not in the catalogue "
        "[FAILED_PRECONDITION, check rule-inactive]"
    )
    assert error.about("row 7").action == "row 7"
    silent = NodeError.from_status("INTERNAL", "", [])
    assert silent.failed and silent.message == "(the node gave no reason)"
    limited = NodeError.from_status(
        "RESOURCE_EXHAUSTED",
        "too many [max-batch]",
        [(CHECK_KEY, MAX_BATCH_CHECK), (LIMIT_KEY, "9")],
    )
    assert (limited.limit, limited.message) == (9, "too many")


def test_client_errors_keep_the_outcome_of_the_core_error() -> None:
    # What a program maps to an exit code stays right without knowing the client's types.
    assert issubclass(NodeUnreachableError, SourceError)
    assert issubclass(WireError, FormatError)
    assert issubclass(NodeError, CheckError)


def test_every_refusal_carries_check_message_and_location_in_one_order() -> None:
    refusals: list[CheckError] = [
        RuleViolation("quorum", "needs 2 council signatures", seq=7),
        VerificationError("chain", "the chain is broken", seq=7),
        NodeError("quorum", "needs 2 council signatures", index=1, code="PERMISSION_DENIED"),
        BatchError(RuleViolation("quorum", "needs 2 council signatures", seq=7), index=1),
    ]
    for refusal in refusals:
        assert refusal.check in ("quorum", "chain")
        assert refusal.message in ("needs 2 council signatures", "the chain is broken")
    assert refusals[0].diagnostics() == "entry 7: needs 2 council signatures [quorum]"
    assert refusals[1].diagnostics() == "entry 7: the chain is broken [chain]"
    batch = refusals[3]
    assert (batch.check, batch.index, batch.seq) == ("quorum", 1, None)
    assert str(batch) == "envelope 1: needs 2 council signatures [quorum]"


@pytest.mark.parametrize(
    ("cause", "check", "message"),
    [
        (FormatError("envelope: 70000 bytes is too large"), "format", "70000 bytes is too large"),
        (ConflictError("entry id ab is already in the log"), "duplicate-id", None),
        (RuleViolation("format", "not canonical"), "format", "not canonical"),
    ],
)
def test_a_batch_error_takes_check_and_message_from_its_cause(
    cause: Exception, check: str, message: str | None
) -> None:
    assert isinstance(cause, FormatError | ConflictError | RuleViolation)
    error = BatchError(cause, index=0)
    assert error.check == check
    assert error.message == (message or str(cause))
    assert error.cause is cause
