"""Checking a batch upload before anything is scored, and summing up what was scored.

An upload is either a UCI-format CSV (training.batch_scoring runs the adapter and the contract on
it, whose errors already name the bad columns and rows) or a file of account ids. The
account-id file is checked here, so a person sees every problem at once, by line number
(CSV, header = line 1) or row number (parquet), rather than a stack trace or a half-scored
file.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Iterator, Sequence
from typing import Literal

import pandas as pd

from collectwise.errors import InvalidInputError

Kind = Literal["csv", "parquet"]
ACCOUNT_ID = "account_id"
ACCOUNT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
SHOW_AT_MOST = 10


class UploadError(InvalidInputError, ValueError):
    """The upload cannot be scored; the message says what to fix."""


def upload_kind(filename: str | None) -> Kind:
    name = (filename or "").lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    raise UploadError(
        f"{filename or 'the file'}: upload a .csv or .parquet file (a UCI-format CSV, or a "
        "file with an account_id column)"
    )


def decode_upload(contents: str | None, max_bytes: int) -> bytes:
    """The bytes of a dcc.Upload value ("data:<type>;base64,<data>")."""
    if not contents or "," not in contents:
        raise UploadError("the upload is empty")
    header, _, payload = contents.partition(",")
    if ";base64" not in header:
        raise UploadError("the upload was not sent as base64 data")
    if len(payload) * 3 // 4 > max_bytes:
        raise UploadError(f"the file is larger than {max_bytes // (1024 * 1024)} MB")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UploadError(f"the upload is not valid base64 data: {exc}") from exc
    if not data.strip():
        raise UploadError("the file is empty")
    return data


def read_frame(data: bytes, kind: Kind) -> pd.DataFrame:
    """The upload as text columns; a parse failure becomes an UploadError."""
    try:
        if kind == "parquet":
            frame = pd.read_parquet(io.BytesIO(data))
            return frame.astype({c: "string" for c in frame.columns if c == ACCOUNT_ID})
        return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise UploadError(f"cannot read the file as {kind}: {exc}") from exc


def _where(positions: Sequence[int], kind: Kind) -> str:
    # CSV: the header is line 1, so data row 0 is line 2; parquet rows count from 1.
    offset, word = (2, "lines") if kind == "csv" else (1, "rows")
    shown = ", ".join(str(p + offset) for p in positions[:SHOW_AT_MOST])
    more = f" and {len(positions) - SHOW_AT_MOST} more" if len(positions) > SHOW_AT_MOST else ""
    return f"{word} {shown}{more}"


def account_id_problems(frame: pd.DataFrame, kind: Kind, max_rows: int) -> list[str]:
    """Every reason the frame is not a usable list of account ids ([] when it is)."""
    columns = [str(c) for c in frame.columns]
    if ACCOUNT_ID not in columns:
        found = ", ".join(columns[:8]) or "none"
        return [
            f"no column '{ACCOUNT_ID}' (columns found: {found}); a file of accounts needs an "
            "account_id column, a UCI-format file the column LIMIT_BAL"
        ]
    if frame.empty:
        return ["the file has a header but no rows"]
    problems = []
    if len(frame) > max_rows:
        problems.append(f"{len(frame)} rows: at most {max_rows} per upload")
    ids = frame[ACCOUNT_ID].astype("string").fillna("").str.strip()
    blank = [i for i, v in enumerate(ids) if not v]
    if blank:
        problems.append(f"column '{ACCOUNT_ID}' is empty on {_where(blank, kind)}")
    bad = [i for i, v in enumerate(ids) if v and not ACCOUNT_ID_PATTERN.match(v)]
    if bad:
        sample = ", ".join(repr(ids.iloc[i]) for i in bad[:3])
        problems.append(
            f"column '{ACCOUNT_ID}' holds values that are not account ids on "
            f"{_where(bad, kind)} (e.g. {sample}): use letters, digits, '_', '.', ':', '-'"
        )
    return problems


def account_ids(frame: pd.DataFrame) -> list[str]:
    """The ids in file order, duplicates dropped (each account is scored once)."""
    ids = frame[ACCOUNT_ID].astype("string").fillna("").str.strip()
    return list(dict.fromkeys(str(v) for v in ids if v))


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def summarise(scores: pd.DataFrame) -> str:
    """ "120 accounts scored: 40 high, 50 medium, 30 low; 2 without features"."""
    total = len(scores)
    if "status" in scores.columns:
        known = scores["status"] == "scored"
    else:
        known = pd.Series(True, index=scores.index)
    bands = scores.loc[known, "band"].value_counts()
    parts = [f"{int(bands[b])} {b}" for b in ("high", "medium", "low") if b in bands.index]
    text = f"{int(known.sum())} of {total} accounts scored"
    if parts:
        text += ": " + ", ".join(parts)
    missing = total - int(known.sum())
    if missing:
        text += f"; {missing} without features (not scored)"
    return text
