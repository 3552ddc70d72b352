"""The monthly loop of one chunk: snapshot, payments, contacts, statement, memory.

Every month draws arrays of fixed shape whatever the state, so a scenario that changes
outcomes in the drift window cannot shift the random numbers of earlier months.
"""

from __future__ import annotations

import numpy as np

from ingestion.synthetic.events import Paid, issue_statements, make_contacts, make_payments
from ingestion.synthetic.oracle import Snapshot, Stats, take_snapshot
from ingestion.synthetic.state import Run
from ingestion.synthetic.world import HISTORY_MONTHS, FloatArr


def _remember(run: Run, m: int, snap: Snapshot, paid: Paid, broken: FloatArr) -> None:
    st = run.st
    slot = m % HISTORY_MONTHS
    st.paid[:, slot] = snap.open & ~paid.label
    st.seen[:, slot] = snap.open
    # Old broken promises weigh less: halve every month.
    st.broken = 0.5 * st.broken + broken


def simulate(run: Run, stats: Stats) -> None:
    """Run every month from the burn-in to as_of; add the counted snapshots to `stats`."""
    n, cal = run.acc.n, run.cal
    for m in range(cal.first, cal.months + 1):
        snap = take_snapshot(run, m)
        paid = make_payments(run, m, snap)
        broken = make_contacts(run, m, snap, paid)
        issue_statements(run, m, paid)
        _remember(run, m, snap, paid, broken)
        if m < 1:
            continue
        t = np.full(n, cal.t(m))
        run.sink.add("_oracle", snap.pop, account=np.arange(n), snapshot_at=t, p=snap.p_label)
        if cal.counted(m):
            # Only open snapshots get labels: with nothing owed there is nothing to collect.
            stats.add(snap.p_label[snap.open], paid.label[snap.open])
