"""`advisor knowledge [TABLE]`: every stored table, row by row, with its source and units."""

from __future__ import annotations

import json
import textwrap

from advisor import physics
from advisor.errors import choice_error


def _row_dict(row) -> dict:
    return row.model_dump(mode="json")


def knowledge_data(k, table: str | None) -> dict:
    names = [table] if table else sorted(k.tables)
    out = {}
    for name in names:
        t = k.tables[name]
        rows = [_row_dict(r) for r in t.rows]
        if name == "measurements":  # each stored figure carries its roofline verdict
            for row, v in zip(rows, physics.verdicts(k), strict=True):
                row["plausible"] = v.plausible
                row["verdict"] = v.reason
                row["roofline_bound"] = v.bound
        out[name] = {"title": t.title, "description": t.description, "units": t.units,
                     "files": t.files, "rows": rows}
    return out


def render_knowledge(k, table: str | None, fmt: str) -> str:
    if table and table not in k.tables:
        raise choice_error("table", table, sorted(k.tables))
    data = knowledge_data(k, table)
    if fmt == "json":
        from advisor.render import nulled  # the loader refuses NaN; a computed verdict must not slip one in

        return json.dumps(nulled(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if not table:
        lines = ["Stored tables (advisor knowledge TABLE shows the rows):", ""]
        for name, t in data.items():
            lines.append(f"  {name:<15} {len(t['rows']):>4} rows  {t['title']}")
        flagged = sum(1 for r in data.get("measurements", {}).get("rows", []) if not r.get("plausible", True))
        if flagged:
            lines += ["", f"  {flagged} stored measurement(s) fail the roofline check: advisor knowledge measurements"]
        return "\n".join(lines) + "\n"
    t = data[table]
    lines = [f"{table}: {t['title']}"]
    if t["description"]:
        lines += textwrap.wrap(t["description"], 80)
    if t["units"]:
        lines.append("units: " + ", ".join(f"{k_} = {v}" for k_, v in t["units"].items()))
    lines.append("files: " + ", ".join(t["files"]))
    for i, row in enumerate(t["rows"], 1):
        lines.append("")
        src = row.pop("source", "")
        head = None
        if "kind" in row and "context_tokens" in row:  # a measured figure: say what was measured
            stat = f" ({row['statistic']})" if row.get("statistic") else ""
            lines.append(f"[{i}] {row['kind']}{stat} of {row.get('model')} on {row.get('backend')} "
                         f"at {row['context_tokens']:,} tokens")
            head = "-"
        for key in ("name", "id", "key", "quant", "model", "workload", "backend", "application"):
            if head:
                break
            if key in row:
                head = f"{key} = {row[key]}"
                lines.append(f"[{i}] {head}")
        if not head:
            lines.append(f"[{i}]")
        for key, val in row.items():
            if head and head.startswith(f"{key} = "):
                continue
            text = json.dumps(val, ensure_ascii=False) if isinstance(val, (list, dict)) else str(val)
            if key == "plausible":
                text = "yes" if val else "NO (fails the roofline)"
            lines += textwrap.wrap(f"{key}: {text}", 80, initial_indent="    ", subsequent_indent="      ")
        lines += textwrap.wrap(f"source: {src}", 80, initial_indent="    ", subsequent_indent="      ")
    return "\n".join(lines) + "\n"
