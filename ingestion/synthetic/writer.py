"""Writing a chunk's tables in the raw contract, the oracle beside them, and the manifest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from ingestion import contract, rawio
from ingestion.synthetic.population import Accounts, Customers
from ingestion.synthetic.state import Sink
from ingestion.synthetic.world import (
    AGE_VOCAB,
    GENERATOR_VERSION,
    REGION_VOCAB,
    IntArr,
    SyntheticConfig,
)

ORACLE_DIR = "_oracle"
TABLE_NAMES = tuple(t.name for t in contract.REQUIRED_TABLES)


def _ids(prefix: str, numbers: IntArr, width: int) -> pd.arrays.ArrowStringArray:
    """Zero-padded ids built as bytes: formatting millions of strings in Python is slow."""
    digits = np.empty((len(numbers), width + 1), np.uint8)
    digits[:, 0] = ord(prefix)
    rest = numbers.astype(np.int64)
    for col in range(width, 0, -1):
        digits[:, col] = rest % 10 + ord("0")
        rest = rest // 10
    offsets = np.arange(len(numbers) + 1, dtype=np.int64) * (width + 1)
    array = pa.LargeStringArray.from_buffers(
        len(numbers), pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(digits))
    )
    return pd.arrays.ArrowStringArray(array)


def _labels(vocab: Sequence[str], codes: npt.NDArray[np.generic]) -> pd.arrays.ArrowStringArray:
    return pd.arrays.ArrowStringArray(pa.array(vocab, pa.large_string()).take(pa.array(codes)))


def _times(us: npt.NDArray[np.generic]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(us, np.int64).view("datetime64[us]")).tz_localize("UTC")


@dataclass(frozen=True)
class ChunkWriter:
    """Writes one chunk's part of every table; ids are numbered from the chunk's first account."""

    out_dir: Path
    part: int
    base: int
    stride: int

    def account_ids(self, local: npt.NDArray[np.generic]) -> pd.arrays.ArrowStringArray:
        return _ids("A", self.base + np.asarray(local, np.int64) + 1, 8)

    def event_ids(self, prefix: str, n: int) -> pd.arrays.ArrowStringArray:
        return _ids(prefix, self.base * self.stride + np.arange(n) + 1, 10)

    def write(self, table: str, frame: dict[str, object]) -> int:
        df = pd.DataFrame(frame)
        # Keep strings in Arrow end to end; the default Python storage would box every value.
        with pd.option_context("mode.string_storage", "pyarrow"):
            if table == ORACLE_DIR:
                path = self.out_dir / ORACLE_DIR / f"part-{self.part:05d}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                df.to_parquet(path, index=False)
            else:
                rawio.write_part(df, self.out_dir, table, self.part)
        return len(df)


def _write_reference(w: ChunkWriter, cust: Customers, acc: Accounts) -> dict[str, int]:
    customers = {
        "customer_id": _ids("C", w.base + np.arange(len(cust.income)) + 1, 8),
        "monthly_income": cust.reported_income,
        "region": _labels(REGION_VOCAB, cust.region),
        "created_at": _times(cust.created),
        "age_band": _labels(AGE_VOCAB, cust.age),
        "sex": _labels(contract.SEXES, cust.sex),
    }
    accounts = {
        "account_id": w.account_ids(np.arange(acc.n)),
        "customer_id": _ids("C", w.base + acc.customer + 1, 8),
        "product": _labels(contract.PRODUCTS, acc.product),
        "credit_limit": acc.credit_limit,
        "original_amount": acc.original,
        "opened_at": _times(acc.opened),
        "delinquent_since": _times(acc.delinquent),
        "placed_at": _times(acc.placed),
    }
    return {"customers": w.write("customers", customers), "accounts": w.write("accounts", accounts)}


def _write_statements(w: ChunkWriter, sink: Sink) -> int:
    s = sink.columns(
        "statements", ("account", "statement_date", "balance", "minimum_due", "days_past_due")
    )
    return w.write(
        "statements",
        {
            "account_id": w.account_ids(s["account"]),
            "statement_date": _times(s["statement_date"]),
            "balance": s["balance"],
            "minimum_due": s["minimum_due"],
            "days_past_due": s["days_past_due"],
        },
    )


def _write_payments(w: ChunkWriter, sink: Sink) -> int:
    p = sink.columns(
        "payments", ("account", "paid_at", "amount", "channel", "status", "recorded_at")
    )
    return w.write(
        "payments",
        {
            "payment_id": w.event_ids("P", len(p["account"])),
            "account_id": w.account_ids(p["account"]),
            "paid_at": _times(p["paid_at"]),
            "amount": p["amount"],
            "channel": _labels(contract.PAYMENT_CHANNELS, p["channel"]),
            "status": _labels(contract.PAYMENT_STATUSES, p["status"]),
            "recorded_at": _times(p["recorded_at"]),
        },
    )


def _write_contacts(w: ChunkWriter, sink: Sink) -> int:
    c = sink.columns("contacts", ("account", "contacted_at", "channel", "outcome", "recorded_at"))
    return w.write(
        "contacts",
        {
            "contact_id": w.event_ids("K", len(c["account"])),
            "account_id": w.account_ids(c["account"]),
            "contacted_at": _times(c["contacted_at"]),
            "channel": _labels(contract.CONTACT_CHANNELS, c["channel"]),
            "outcome": _labels(contract.CONTACT_OUTCOMES, c["outcome"]),
            "recorded_at": _times(c["recorded_at"]),
        },
    )


def _write_promises(w: ChunkWriter, sink: Sink) -> int:
    p = sink.columns(
        "promises", ("account", "made_at", "promised_amount", "due_date", "recorded_at")
    )
    return w.write(
        "promises",
        {
            "promise_id": w.event_ids("R", len(p["account"])),
            "account_id": w.account_ids(p["account"]),
            "made_at": _times(p["made_at"]),
            "promised_amount": p["promised_amount"],
            "due_date": _times(p["due_date"]),
            "recorded_at": _times(p["recorded_at"]),
        },
    )


def _write_oracle(w: ChunkWriter, sink: Sink) -> int:
    o = sink.columns(ORACLE_DIR, ("account", "snapshot_at", "p"))
    frame = {
        "account_id": w.account_ids(o["account"]),
        "snapshot_at": _times(o["snapshot_at"]),
        "p_default": np.asarray(o["p"], np.float64),
    }
    return w.write(ORACLE_DIR, frame)


def write_chunk(w: ChunkWriter, cust: Customers, acc: Accounts, sink: Sink) -> dict[str, int]:
    """Every table's part of one chunk; returns rows written per table."""
    counts = _write_reference(w, cust, acc)
    counts["statements"] = _write_statements(w, sink)
    counts["payments"] = _write_payments(w, sink)
    counts["contacts"] = _write_contacts(w, sink)
    counts["promises"] = _write_promises(w, sink)
    counts[ORACLE_DIR] = _write_oracle(w, sink)
    return counts


def clear(out_dir: Path) -> None:
    """Drop old parts, also of the optional outcomes table, which would override labels."""
    for table in contract.ALL_TABLES:
        rawio.clear_table(out_dir, table.name)
    for path in (out_dir / ORACLE_DIR).glob("*.parquet"):
        path.unlink()


def write_manifest(
    config: SyntheticConfig, out_dir: Path, counts: dict[str, int], alpha: float
) -> None:
    manifest = {
        "source": "synthetic",
        "as_of": config.as_of.isoformat(),
        "start": config.start.isoformat(),
        "months": config.months,
        "accounts": config.accounts,
        "seed": config.seed,
        "scenario": config.scenario,
        "drift_months": config.drift_months,
        "default_rate_target": config.default_rate,
        "chunk_accounts": config.chunk_accounts,
        "intercept": alpha,
        "row_counts": counts,
        "generator_version": GENERATOR_VERSION,
    }
    (out_dir / "_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
