"""The protocol's facts as data, defined once: what a node and its clients both read.

``redlist.v1`` (generated) fixes the messages; this module fixes what travels beside
them and what the generated code cannot say:

* the trailing-metadata keys of a refusal (:data:`CHECK_KEY`, :data:`INDEX_KEY`,
  :data:`LIMIT_KEY`, :data:`RETRY_AFTER_KEY`), written by the node and read by every
  client through :class:`RefusalDetails`, and a witness's stored size
  (:data:`WITNESS_SIZE_KEY`);
* the checks a refusal names when a request exceeds one of the node's limits
  (:data:`MAX_BATCH_CHECK`, :data:`RATE_LIMIT_CHECK`, and those of admission:
  :data:`MAX_CALLS_CHECK`, ...);
* the node's limits themselves (:class:`Limits`), as the ``GetLimits`` call returns
  them.

The checks a refused *entry* names (``"format"``, ``"duplicate-id"``, ``"signer-role"``,
...) are the ledger's own (``redlist.ledger.points.CHECKS``); they are carried here,
never redefined.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redlist.v1 import ledger_pb2

#: Trailing metadata: the batch index (decimal, 0-based) of the refused envelope.
INDEX_KEY = "redlist-index"
#: Trailing metadata: the short identifier of the broken rule or exceeded limit.
CHECK_KEY = "redlist-check"
#: The check of a mirror's ``GetCheckpoint`` while it holds nothing yet (UNAVAILABLE:
#: ask again later), which tells a client the node answered.
CATCHING_UP_CHECK = "catching-up"
#: Trailing metadata: the value (decimal) of the limit a refused request exceeded.
LIMIT_KEY = "redlist-limit"
#: Trailing metadata: how long to wait before a retry, in whole milliseconds.
RETRY_AFTER_KEY = "redlist-retry-after-ms"
#: Trailing metadata of a witness's ABORTED answer to ``AddCheckpoint``: the tree size
#: (decimal) it last cosigned for that log, from which the caller asks again.
WITNESS_SIZE_KEY = "redlist-witness-size"

#: The check of a Submit with more envelopes than the node takes in one request;
#: its ``redlist-limit`` is the most it takes (``Limits.max_batch``).
MAX_BATCH_CHECK = "max-batch"
#: The check of a call refused by the node's per-client rate limit; its
#: ``redlist-retry-after-ms`` says when a retry gets in.
RATE_LIMIT_CHECK = "rate-limit"
#: The same for the per-client limit of request bytes.
BYTE_RATE_LIMIT_CHECK = "rate-limit-bytes"
#: Checks of a call refused, before its request was read, because the node serves
#: that many calls (or keeps that many streams open) at once already, in all or for
#: the calling client; ``redlist-limit`` is the limit. Retrying later gets in.
MAX_CALLS_CHECK = "max-calls"
MAX_CALLS_PER_CLIENT_CHECK = "max-calls-per-client"
MAX_STREAMS_CHECK = "max-streams"
MAX_STREAMS_PER_CLIENT_CHECK = "max-streams-per-client"
#: The check of a stream the node ended because the client left an answer unread
#: for longer than the node waits (``redlist-limit``: that many seconds).
STREAM_WRITE_TIMEOUT_CHECK = "stream-write-timeout"

#: Bytes a SubmitRequest spends on framing per envelope, at most: a field tag and a
#: length of up to 4 bytes (the envelope limit stays far below 2**28).
ENVELOPE_FRAMING_BYTES = 5


@dataclass(frozen=True)
class Limits:
    """What a node accepts in one Submit (the ``Limits`` message of ``GetLimits``).

    ``max_batch`` envelopes at most, each of at most ``max_envelope_bytes``, in a
    request of at most ``max_message_bytes`` (protobuf framing included).
    """

    max_batch: int
    max_envelope_bytes: int
    max_message_bytes: int

    def to_message(self) -> ledger_pb2.Limits:
        return ledger_pb2.Limits(
            max_batch=self.max_batch,
            max_envelope_bytes=self.max_envelope_bytes,
            max_message_bytes=self.max_message_bytes,
        )

    @classmethod
    def from_message(cls, message: ledger_pb2.Limits) -> Limits:
        return cls(message.max_batch, message.max_envelope_bytes, message.max_message_bytes)

    def request_fits(self, envelope_sizes: Iterable[int]) -> bool:
        """Whether one SubmitRequest of envelopes of these sizes stays within every limit."""
        count = total = 0
        for size in envelope_sizes:
            if size > self.max_envelope_bytes:
                return False
            count += 1
            total += size + ENVELOPE_FRAMING_BYTES
        return count <= self.max_batch and total <= self.max_message_bytes


@dataclass(frozen=True)
class RefusalDetails:
    """What a refusal says for programs, beside its status code and message.

    The fields of every refusal, in the ledger's order (``CheckError``): ``check``
    (the broken rule or exceeded limit), then where, ``index`` (the envelope in the
    batch); and, for a limit, its value ``limit`` or, for the rate limit, the wait
    ``retry_after_ms``. Each is None when the refusal does not say.
    """

    check: str | None = None
    index: int | None = None
    limit: int | None = None
    retry_after_ms: int | None = None

    def to_metadata(self) -> tuple[tuple[str, str], ...]:
        """The trailing metadata a node answers the refusal with."""
        metadata: list[tuple[str, str]] = []
        if self.check is not None:
            metadata.append((CHECK_KEY, self.check))
        if self.index is not None:
            metadata.append((INDEX_KEY, str(self.index)))
        if self.limit is not None:
            metadata.append((LIMIT_KEY, str(self.limit)))
        if self.retry_after_ms is not None:
            metadata.append((RETRY_AFTER_KEY, str(self.retry_after_ms)))
        return tuple(metadata)

    @classmethod
    def from_metadata(cls, metadata: Iterable[tuple[str, str | bytes]]) -> RefusalDetails:
        """The details in a refusal's trailing metadata; a missing or garbled value is None.

        A node's metadata is not trusted to be well-formed: a value that is not what
        its key promises (a negative or non-decimal index) is ignored, never raised.
        """
        found: dict[str, str] = {}
        for key, value in metadata:
            found[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return cls(
            check=found.get(CHECK_KEY) or None,
            index=_decimal(found.get(INDEX_KEY)),
            limit=_decimal(found.get(LIMIT_KEY)),
            retry_after_ms=_decimal(found.get(RETRY_AFTER_KEY)),
        )

    def strip(self, message: str) -> str:
        """``message`` without the parts these details carry: "envelope 3: " and " [check]"."""
        if self.index is not None:
            message = message.removeprefix(f"envelope {self.index}: ")
        if self.check is not None:
            message = message.removesuffix(f" [{self.check}]")
        return message


def _decimal(text: str | None) -> int | None:
    # isascii: str.isdigit also accepts other scripts' digits, which int() would read.
    if text is None or not (text.isascii() and text.isdigit()) or len(text) > 20:
        return None
    return int(text)


__all__ = [
    "BYTE_RATE_LIMIT_CHECK",
    "CATCHING_UP_CHECK",
    "CHECK_KEY",
    "ENVELOPE_FRAMING_BYTES",
    "INDEX_KEY",
    "LIMIT_KEY",
    "MAX_BATCH_CHECK",
    "MAX_CALLS_CHECK",
    "MAX_CALLS_PER_CLIENT_CHECK",
    "MAX_STREAMS_CHECK",
    "MAX_STREAMS_PER_CLIENT_CHECK",
    "RATE_LIMIT_CHECK",
    "RETRY_AFTER_KEY",
    "STREAM_WRITE_TIMEOUT_CHECK",
    "WITNESS_SIZE_KEY",
    "Limits",
    "RefusalDetails",
]


#: A staff key's read signature (``GetAccountRequest.read_signature``) is accepted this
#: many seconds before or after the node's clock: long enough for clocks that differ a
#: little, short enough that a signature overheard is of no use for long.
READ_WINDOW_S = 300
#: The check of a refused read signature.
READ_SIGNATURE_CHECK = "read-signature"
_READ_DOMAIN = b"redlist/read/v1"


def read_message(method: str, subject: str, time_s: int) -> bytes:
    """What a staff key signs to read free texts (see ``ReadSignature`` in the proto):
    ``"redlist/read/v1" 0x00 method 0x00 subject 0x00 time``, time in decimal seconds."""
    return b"\x00".join(
        (_READ_DOMAIN, method.encode("utf-8"), subject.encode("utf-8"), str(time_s).encode())
    )


#: The read signature's method for ``CheckAccounts``.
CHECK_ACCOUNTS_METHOD = "CheckAccounts"
#: Most accounts one ``CheckAccounts`` request may ask about; a client sends more in chunks.
MAX_CHECK_ACCOUNTS = 10_000


def accounts_subject(accounts: Sequence[str]) -> str:
    """The subject a ``CheckAccounts`` read signature covers: the lower-case hex SHA-256
    of the accounts in request order, each followed by one 0x00 byte. It binds the
    signature to exactly these accounts, so an overheard one asks the same question again
    for minutes and nothing else."""
    digest = hashlib.sha256()
    for account in accounts:
        digest.update(account.encode("utf-8") + b"\x00")
    return digest.hexdigest()
