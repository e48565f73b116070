"""Settlement benchmark pieces.

`python -m bench.settlement parse --file F --database-url U`
    the baseline: parse the same Amazon V2 flat file with nothing but `csv` and `Decimal` and insert every line
    into `settlement_lines` of a fresh platform database, in the same batches as staging (5,000 rows per
    transaction) with the same columns. Prints `RESULT {json}`: seconds, lines, peak RSS (MiB).

The platform side runs the whole `SettlementReconciliation` workflow (stage → match → classify → totals →
journal → post → report) on a bench worker; `bench.scenarios.settlement` times it from the start to the result."""

from __future__ import annotations

import argparse
import csv
import json
import resource
import time
from datetime import datetime
from decimal import Decimal

BATCH = 5000


def parse_into_db(path: str, database_url: str) -> dict:
    from sqlalchemy import insert

    from adapters import sql as db
    from adapters.sql import create_schema, make_engine

    engine = make_engine(database_url)
    create_schema(engine)
    t0 = time.perf_counter()
    count = 0
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        idx = {name: i for i, name in enumerate(next(rows))}
        totals = next(rows)
        key = f"parse-only:{totals[idx['settlement-id']]}"
        ins = insert(db.settlement_lines)
        batch: list[dict] = []
        cols = {c: idx[c] for c in ("transaction-type", "order-id", "merchant-order-id", "adjustment-id",
                                    "shipment-id", "marketplace-name", "sku", "quantity-purchased", "amount-type",
                                    "amount-description", "amount", "posted-date-time", "order-item-code")}
        for row in rows:
            count += 1
            def get(c: str, row: list[str] = row) -> str | None:
                return row[cols[c]] or None

            qty = get("quantity-purchased")
            posted = get("posted-date-time")
            batch.append({
                "settlement_key": key, "line_no": count, "transaction_type": row[cols["transaction-type"]],
                "kind": "order", "order_id": get("order-id"), "merchant_order_id": get("merchant-order-id"),
                "adjustment_id": get("adjustment-id"), "shipment_id": get("shipment-id"),
                "marketplace": get("marketplace-name"), "sku": get("sku"), "quantity": int(qty) if qty else None,
                "amount_type": row[cols["amount-type"]], "amount_description": row[cols["amount-description"]],
                "amount_minor": int(Decimal(row[cols["amount"]]).scaleb(2)),
                "buyer_amount": row[cols["amount-type"]] == "ItemPrice",
                "posted_at": datetime.fromisoformat(posted.replace(" UTC", "+00:00")) if posted else None,
                "source_ref": get("order-item-code"),
            })
            if len(batch) >= BATCH:
                with engine.begin() as conn:
                    conn.execute(ins, batch)
                batch.clear()
        if batch:
            with engine.begin() as conn:
                conn.execute(ins, batch)
    seconds = time.perf_counter() - t0
    engine.dispose()
    return {"seconds": seconds, "lines": count,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["parse"])
    parser.add_argument("--file", required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    print("RESULT " + json.dumps(parse_into_db(args.file, args.database_url)), flush=True)
