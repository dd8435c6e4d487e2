"""The program a signature worker runs: ``python -m redlist.ledger.sigchild``.

``sigworkers.VerifyPool`` starts one per core and talks to each over its stdin and
stdout. The worker says ``HELLO`` once it can verify, then answers each message in
order until its stdin ends:

* a message is a msgpack array of ``[public key, body, signature]`` triples, each an
  entry signature over ``ENTRY_DOMAIN || body``;
* its answer is the message's number (counted from 0, 4 bytes big-endian), then one
  byte per triple: 1 when it verifies (``ed25519rule.verify_many``), else 0;
* every message and answer is preceded by its length, 4 bytes big-endian.

A worker imports only this module, msgpack and ``ed25519rule`` (libsodium's binding),
so it is ready in about a hundredth of a second and costs its caller's cores little
to start; the pool's side (threads, queues, processes) is ``sigworkers``'.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import sys
from typing import IO

import msgpack

from redlist.ledger.ed25519rule import ENTRY_DOMAIN, verify_many

#: Every message and answer is preceded by its length, 4 bytes big-endian.
LENGTH = struct.Struct(">I")
#: An answer starts with the number of the message it answers (4 bytes big-endian).
NUMBER = struct.Struct(">I")
#: What a worker says first, once it has started and can verify.
HELLO = b"redlist-verify/1"
#: The byte of a triple that verified; any other answer byte but 0 is nonsense.
VALID = 1
OUTCOMES = b"\x00\x01"


def read_message(stream: IO[bytes], limit: int | None = None) -> bytes | None:
    """One length-prefixed message from ``stream``; None at end of input, or when
    its length is above ``limit`` (nothing more is read: the stream is out of step)."""
    header = stream.read(LENGTH.size)
    if len(header) < LENGTH.size:
        return None
    (length,) = LENGTH.unpack(header)
    if limit is not None and length > limit:
        return None
    message = stream.read(length)
    return message if len(message) == length else None


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """A worker's loop: verify each message's triples, answer one byte each, until EOF."""
    answers.write(LENGTH.pack(len(HELLO)) + HELLO)
    answers.flush()
    number = 0
    while True:
        message = read_message(requests)
        if message is None:
            return
        outcomes = verify_many(msgpack.unpackb(message, raw=False), ENTRY_DOMAIN)
        answer = NUMBER.pack(number) + outcomes
        answers.write(LENGTH.pack(len(answer)) + answer)
        answers.flush()
        number += 1


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # When the auditor stops listening there is no one left to answer.
    with contextlib.suppress(BrokenPipeError):
        serve(sys.stdin.buffer, sys.stdout.buffer)
    # Every answer is written and flushed (``serve``), and a worker holds nothing else:
    # the interpreter's teardown would only cost its caller the time to wait for it.
    os._exit(0)


if __name__ == "__main__":
    main()


__all__ = ["HELLO", "LENGTH", "NUMBER", "OUTCOMES", "VALID", "main", "read_message", "serve"]
