"""Writing a batch to the alert store the way every runner must: never drop, never crash on an outage.

While the store is unavailable the runner waits with exponential backoff and does not advance (no
checkpoint, no offset commit), so nothing is lost and it resumes by itself when the store returns.
Alerts the store refuses for good become dead letters with the store's reason.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence

from fraudstream.services.stores.alerts.base import Alert, AlertStore, RejectedDocuments, StoreUnavailable
from fraudstream.services.stores.dead_letters import DeadLetter

log = logging.getLogger(__name__)
REJECTED_SOURCE = "alert-store"
MAX_BACKOFF_S = 30.0


def write_batch(
    store: AlertStore,
    alerts: Sequence[Alert],
    letters: Sequence[DeadLetter],
    *,
    stopping: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
    on_outage: Callable[[Exception, float], None] | None = None,
) -> bool:
    """Store the batch, waiting out outages; False only if asked to stop while the store is down."""
    alerts, letters = list(alerts), list(letters)
    delay = 0.5
    while True:
        try:
            store.write(alerts, letters)
            return True
        except RejectedDocuments as error:
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
            if stopping():
                return False
            log.warning("alert store unavailable (%s); retrying in %.1f s", error, delay)
            if on_outage is not None:
                on_outage(error, delay)
            sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
