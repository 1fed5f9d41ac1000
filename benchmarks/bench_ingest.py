"""How fast rows become transactions: validate() per row, and file read + validate in rows per second.

Run ``python benchmarks/bench_ingest.py`` (``--quick`` for a smoke run). Prints a table and writes
``benchmarks/results/ingest.json``. Files are generated in a temporary directory: canonical CSV
and JSON Lines, plus the Sparkov layout through its column-mapping preset.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fraudstream.model.schema import CANONICAL_FIELDS, format_timestamp, validate
from fraudstream.services.pipeline.cards import CardIds
from fraudstream.services.pipeline.core import Intake
from fraudstream.services.sources.files import read_transactions

RESULTS = Path(__file__).parent / "results" / "ingest.json"
TYPICAL_ROW: dict[str, Any] = {
    "transaction_id": "tx-000000012345",
    "timestamp": "2026-01-01T08:15:30.123+00:00",
    "card_id": "card-00042",
    "merchant_id": "m-0007",
    "amount": 42.5,
    "currency": "USD",
    "merchant_category": "grocery",
    "channel": "card_present",
    "country": "US",
    "card_lat": 40.7,
    "card_lon": -74.0,
    "merchant_lat": 40.71,
    "merchant_lon": -74.01,
    "device_id": None,
    "ip": None,
    "is_fraud": 0,
    "scenario": "",
}
SPARKOV_HEADER = (
    ",trans_date_trans_time,cc_num,merchant,category,amt,first,last,gender,street,city,state,zip,lat,long,"
    "city_pop,job,dob,trans_num,unix_time,merch_lat,merch_long,is_fraud"
).split(",")


def per_call_us(function: Callable[[], object], calls: int, repeats: int = 5) -> float:
    """Best-of-``repeats`` time per call in microseconds (the best run is the least disturbed one)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def synthetic_rows(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Canonical rows like the typical one, with varied ids, times, cards and amounts."""
    rng = random.Random(seed)
    start_ms = 1_767_225_600_000
    rows = []
    for index in range(count):
        row = dict(TYPICAL_ROW)
        row["transaction_id"] = f"tx-{index:012d}"
        row["timestamp"] = format_timestamp(start_ms + index * 37, 0)
        row["card_id"] = f"card-{rng.randrange(50_000):05d}"
        row["merchant_id"] = f"m-{rng.randrange(2_000):04d}"
        row["amount"] = round(rng.lognormvariate(3.5, 1.0), 2)
        row["is_fraud"] = int(rng.random() < 0.01)
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    names = [*CANONICAL_FIELDS, "scenario"]
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(names)
        for row in rows:
            writer.writerow(["" if row.get(name) is None else row[name] for name in names])


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as file:
        for row in rows:
            file.write(json.dumps(row) + "\n")


def write_sparkov(path: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(SPARKOV_HEADER)
        for index in range(count):
            seconds = index * 3
            day, second = divmod(seconds, 86_400)
            stamp = f"2019-01-{1 + day % 28:02d} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
            writer.writerow([
                index, stamp, 4_000_000_000_000 + rng.randrange(1000), "fraud_Rippin, Kub and Mann", "misc_net",
                round(rng.lognormvariate(3.5, 1.0), 2), "Jennifer", "Banks", "F", "561 Perry Cove", "Moravian Falls",
                "NC", 28654, 36.0788, -81.1781, 3495, "Psychologist, counselling", "1988-03-09", f"{index:032x}",
                1_325_376_018 + seconds, 36.011293, -82.048315, int(rng.random() < 0.01),
            ])


def rows_per_second(path: Path, fmt: str = "canonical", repeats: int = 3) -> float:
    best = float("inf")
    count = 0
    for _ in range(repeats):
        start = time.perf_counter()
        # Card numbers (some of the Sparkov layout's cc_num) are hashed, as every command does.
        intake = Intake(str(path), card_ids=CardIds(b"benchmark card-id key"))
        count = sum(1 for _ in read_transactions(path, fmt, intake=intake))
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--rows", type=int, default=None, help="rows per file (default 200000, --quick 20000)")
    args = parser.parse_args()
    rows = args.rows or (20_000 if args.quick else 200_000)
    calls = 20_000 if args.quick else 200_000

    csv_row = {name: "" if value is None else str(value) for name, value in TYPICAL_ROW.items()}
    results: dict[str, Any] = {
        "validate_us_per_row": per_call_us(lambda: validate(TYPICAL_ROW), calls),
        "validate_csv_strings_us_per_row": per_call_us(lambda: validate(csv_row), calls),
    }
    data = synthetic_rows(rows)
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        write_csv(folder / "tx.csv", data)
        write_jsonl(folder / "tx.jsonl", data)
        write_sparkov(folder / "sparkov.csv", rows)
        results["csv_read_validate_rows_per_s"] = rows_per_second(folder / "tx.csv")
        results["jsonl_read_validate_rows_per_s"] = rows_per_second(folder / "tx.jsonl")
        results["sparkov_csv_read_map_validate_rows_per_s"] = rows_per_second(folder / "sparkov.csv", "sparkov")
    results["rows_per_file"] = rows
    results["python"] = platform.python_version()
    results["machine"] = platform.machine()
    results["quick"] = args.quick

    for name, value in results.items():
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        print(f"{name:42s} {shown}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
