"""The audits of ``redlist-verify bundles`` as tasks on a Dask distributed cluster.

Needs the verifier's optional ``dask`` extra (``pip install 'redlist-verifier[dask]'``)
here and on every worker, and the bundles at the same paths on every worker (a shared
or copied file system): a task carries a bundle's path and its log key, never its
bytes. Each log is one task running ``many.audit_bundle``, the function a local
worker process runs, so a log's result is the same wherever it was audited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from distributed import Client, as_completed

from redlist.ledger.errors import RedlistError
from redlist.ledger.i18n import _
from redlist.verifier.many import LogJob, LogOutcome, audit_bundle

#: Seconds to wait for the scheduler to answer before giving up (exit 2).
CONNECT_TIMEOUT_S = 30


class SchedulerError(RedlistError):
    """The Dask scheduler cannot be reached or used (exit 2)."""


def run_on_cluster(
    address: str, jobs: Sequence[LogJob], *, done: Callable[[], None] | None = None
) -> Iterator[LogOutcome]:
    """Audit ``jobs`` on the cluster whose scheduler is at ``address``, one task per log,
    yielding each outcome as it finishes; ``done`` is called after each."""
    # distributed's Client and as_completed carry no annotations (hence the ignores).
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError, ValueError) as exc:
        raise SchedulerError(
            _("cannot reach the Dask scheduler at {address}: {exc}").format(
                address=address, exc=exc
            )
        ) from None
    with client:
        # pure=False: two runs of one bundle are two audits, never a cached answer.
        futures = client.map(audit_bundle, list(jobs), pure=False)
        for future in as_completed(futures):  # type: ignore[no-untyped-call]
            outcome = future.result()
            if not isinstance(outcome, LogOutcome):
                raise SchedulerError(
                    _("a Dask worker answered {name}").format(name=type(outcome).__name__)
                )
            yield outcome
            if done is not None:
                done()


__all__ = ["CONNECT_TIMEOUT_S", "SchedulerError", "run_on_cluster"]
