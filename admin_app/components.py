"""Small building blocks the pages share: grids, messages, headers, key-value tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import html

from admin_app.logic.outcome import Outcome


def grid(
    grid_id: str,
    rows: list[dict[str, Any]],
    columns: Sequence[str] | None = None,
    *,
    height: int = 360,
    select: bool = False,
    page_size: int | None = 20,
    row_id: str | None = None,
) -> dag.AgGrid:
    """A sortable, filterable grid; `select` makes rows selectable one at a time."""
    names = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    options: dict[str, Any] = {"animateRows": False}
    if page_size:
        options.update(pagination=True, paginationPageSize=page_size)
    if select:
        options["rowSelection"] = {
            "mode": "singleRow",
            "checkboxes": False,
            "enableClickSelection": True,
        }
    extra: dict[str, Any] = {"getRowId": f"params.data.{row_id}"} if row_id else {}
    return dag.AgGrid(
        id=grid_id,
        rowData=rows,
        columnDefs=[{"field": n, "headerName": n.replace("_", " ")} for n in names],
        defaultColDef={"sortable": True, "filter": True, "resizable": True, "minWidth": 90},
        columnSize="autoSize",
        dashGridOptions=options,
        style={"height": f"{height}px", "width": "100%"},
        **extra,
    )


def columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Column definitions for a grid whose rows decide the columns (the first row's keys)."""
    return [{"field": k, "headerName": k.replace("_", " ")} for k in (rows[0] if rows else {})]


def message(result: Outcome | None) -> Any:
    if result is None:
        return None
    return dbc.Alert(result.message, color=result.level, className="mb-2", dismissable=True)


def note(text: str, colour: str = "secondary") -> dbc.Alert:
    return dbc.Alert(text, color=colour, className="mb-2")


def header(title: str, subtitle: str | None = None) -> html.Div:
    children: list[Any] = [html.H2(title, className="h4 mb-1")]
    if subtitle:
        children.append(html.P(subtitle, className="text-muted mb-3"))
    return html.Div(children)


def pairs(items: Sequence[tuple[str, str]]) -> dbc.Table:
    body = [html.Tr([html.Th(k, className="fw-normal text-muted"), html.Td(v)]) for k, v in items]
    return dbc.Table(html.Tbody(body), size="sm", className="mb-0", borderless=True)


def section(title: str, *children: Any) -> dbc.Card:
    return dbc.Card(
        [dbc.CardHeader(title, className="fw-semibold"), dbc.CardBody(list(children))],
        className="mb-3",
    )


def stat(label: str, value: str, colour: str = "secondary") -> dbc.Col:
    return dbc.Col(
        dbc.Card(
            dbc.CardBody(
                [
                    html.Div(label, className="text-muted small"),
                    html.Div(
                        value,
                        className=f"{'fs-5' if len(value) <= 24 else 'small'} fw-semibold "
                        f"text-{colour}",
                    ),
                ]
            ),
            className="h-100",
        ),
        md=3,
        className="mb-2",
    )


def not_permitted(what: str) -> dbc.Alert:
    return dbc.Alert(f"Your role may not {what}.", color="warning")
