"""Writing a batch to the alert store the way every runner must: never drop, never crash on an outage.

While the store is unavailable the runner waits with exponential backoff and does not advance (no
checkpoint, no offset commit), so nothing is lost and it resumes by itself when the store returns.
Alerts the store refuses for good become dead letters with the store's reason.

Two things end the wait (:class:`StoreWait`): a stop asked by the user (the batch was not stored and
nothing is committed, so the run may leave at once), and a store that has not answered once since the
run started within ``first_contact_s`` — a mistyped URL, not an outage — which raises
:class:`StoreNeverAnswered`. A store that answered once is waited for through any outage.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence

from fraudstream.model.errors import ServiceError
from fraudstream.services.stores.alerts.base import Alert, AlertStore, RejectedDocuments, StoreUnavailable
from fraudstream.services.stores.dead_letters import DeadLetter

log = logging.getLogger(__name__)
REJECTED_SOURCE = "alert-store"
MAX_BACKOFF_S = 30.0
FIRST_CONTACT_S = 60.0  # the default wait for a store that has never answered (``run --store-first-contact``)
_POLL_S = 0.05


class StoreNeverAnswered(ServiceError, RuntimeError):
    """The alert store has not answered once since the run started, within the first-contact wait."""


class StoreWait:
    """When a runner stops waiting for its alert store: when asked to stop, or when the store has not answered
    once within ``first_contact_s`` of the start (None: wait for it forever).

    It also hands the same test to a store that retries on its own (:meth:`set_interrupt`), so that its
    retries and unanswered requests end as soon as the runner gives up.
    """

    def __init__(self, store: AlertStore, stopping: Callable[[], bool], first_contact_s: float | None = FIRST_CONTACT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.stopping, self.clock = store, stopping, clock
        self.first_contact_s = first_contact_s
        self.deadline = None if first_contact_s is None else clock() + first_contact_s
        self.stored_once = False
        interrupt = getattr(store, "set_interrupt", None)
        if interrupt is not None:
            interrupt(self.give_up)

    def answered(self) -> bool:
        """Whether the store ever answered: a write went through, or it says it did (stores without the
        ``answered`` attribute never fail to connect, so they count as answered)."""
        return self.stored_once or bool(getattr(self.store, "answered", True))

    def never_answered(self) -> bool:
        """The first-contact wait is over and the store has still not answered."""
        return self.deadline is not None and not self.answered() and self.clock() >= self.deadline

    def give_up(self) -> bool:
        """Stop waiting now (cheap and thread-safe: it reads flags and the clock)."""
        return self.stopping() or self.never_answered()

    def sleep(self, seconds: float) -> None:
        """Sleep the backoff, waking early when it is time to give up."""
        until = self.clock() + seconds
        while not self.give_up() and (left := until - self.clock()) > 0:
            time.sleep(min(left, _POLL_S))


def write_batch(
    store: AlertStore,
    alerts: Sequence[Alert],
    letters: Sequence[DeadLetter],
    *,
    stopping: Callable[[], bool] | None = None,
    wait: StoreWait | None = None,
    sleep: Callable[[float], None] | None = None,
    on_outage: Callable[[Exception, float], None] | None = None,
) -> bool:
    """Store the batch, waiting out outages; False only if asked to stop while the store is down.

    Give ``wait`` (or just ``stopping``); raises :class:`StoreNeverAnswered` when the store has not answered
    once within the wait's first-contact time.
    """
    if not alerts and not letters:
        return True  # nothing to store: no contact, so it proves nothing about the store (first contact included)
    if wait is None:
        wait = StoreWait(store, stopping or (lambda: False), first_contact_s=None)
    pause = sleep or wait.sleep
    alerts, letters = list(alerts), list(letters)
    delay = 0.5
    while True:
        try:
            store.write(alerts, letters)
            wait.stored_once = True
            return True
        except RejectedDocuments as error:
            wait.stored_once = True
            refused = dict(error.rejected)
            letters += [
                DeadLetter(REJECTED_SOURCE, a.transaction_id, None, f"alert store refused it: {refused[a.transaction_id]}",
                           json.dumps(a.record, ensure_ascii=False, default=str))
                for a in alerts if a.transaction_id in refused
            ]
            alerts = [a for a in alerts if a.transaction_id not in refused]
            for letter in [x for x in letters if x.key() in refused]:  # nowhere left to put it: say so loudly
                log.error("alert store refused dead letter %s (%s): %s", letter.key(), refused[letter.key()], letter.raw[:200])
            letters = [x for x in letters if x.key() not in refused]
        except StoreUnavailable as error:
            if wait.stopping():
                return False
            if wait.never_answered():
                raise StoreNeverAnswered(
                    f"the alert store has not answered in the {wait.first_contact_s:g} s since the run started "
                    f"({error}); check --store (a store that answered once is waited for through outages)"
                ) from None
            log.warning("alert store unavailable (%s); retrying in %.1f s", error, delay)
            if on_outage is not None:
                on_outage(error, delay)
            pause(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
