"""Benchmark: the upload ingest path against a bare psycopg COPY of the same rows, on PostgreSQL.

    DATABASE_URL=postgres://user@host:5432/db python bench/ingest.py [--rows 1000000] [--keep]

1. Generates a JSON Lines file of `--rows` realistic logged rows (support-ticket inputs of 200-600
   characters, a label, usage token counts and a timestamp; every row distinct) and the file of its
   first 100,000 rows. Generation happens in this process and is not measured.
2. Ingests each file through the upload code path: the file is stored as an ExampleUpload and
   `upload_process` (exactly what the Celery ingest task runs: parse, validate, hash, split, dedup
   lookup, COPY + INSERT ... ON CONFLICT, error rows, counters and checkpoint per batch) runs in a
   fresh subprocess, which reports its wall time and peak RSS (ru_maxrss), so neither the generation
   nor this process's memory counts.
3. Baseline, in a subprocess too: read the same file line by line, parse each line with orjson and
   COPY the rows straight into the same examples table (same indexes) with psycopg's `copy.write_row`,
   one transaction per 2,000 rows like the ingest. It runs first, so the ingest meets the larger
   indexes (the comparison leans against the ingest).

Prints rows/s for both and their ratio, and peak RSS for 100k and --rows rows. Targets: ratio >= 0.5,
peak RSS <= 300 MB and flat in the row count. The benchmark's tenant and rows are deleted at the end
unless --keep is given, and so are the generated files unless --workdir names their folder.
Migrations are applied to the database first.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

LABELS = [
    "card_arrival", "card_not_working", "lost_or_stolen_card", "pin_blocked", "cash_withdrawal_charge",
    "declined_transfer", "exchange_rate", "refund_not_showing_up", "top_up_failed", "wrong_amount_of_cash_received",
    "transfer_timing", "verify_my_identity", "direct_debit_payment_not_recognised", "change_pin", "card_delivery_estimate",
    "balance_not_updated_after_bank_transfer", "pending_card_payment", "terminate_account", "apple_pay_or_google_pay",
    "country_support",
]  # fmt: skip
OPENINGS = [
    "Hi there,",
    "Hello,",
    "Good morning,",
    "Hey support team,",
    "Dear customer service,",
    "Hi,",
    "Hello again,",
    "Urgent:",
    "Quick question:",
    "I need help.",
]
SENTENCES = [
    "I ordered a new card two weeks ago and it still has not arrived at my home address.",
    "My card was declined at the supermarket this morning even though I have enough money on the account.",
    "I tried to withdraw cash from an ATM abroad and I was charged a fee that I did not expect.",
    "The transfer I made to my landlord on Monday is still showing as pending in the app.",
    "I entered the wrong PIN three times and now the card seems to be blocked.",
    "There is a payment on my statement from a merchant I do not recognise at all.",
    "The exchange rate applied to my last purchase looks much worse than the one shown in the app.",
    "I topped up my account with my debit card but the money never showed up in my balance.",
    "The refund the shop promised me last week is not visible in my transactions yet.",
    "I would like to close my account and move the remaining balance to my other bank.",
    "Apple Pay stopped working on my phone after I updated it yesterday evening.",
    "Can you tell me which countries your card can be used in without extra charges?",
    "The app keeps asking me to verify my identity again although I already uploaded my passport.",
    "I got less cash from the machine than the amount that was taken from my account.",
    "How long does it normally take for an international transfer to reach the recipient?",
    "Please explain why my balance did not change after my salary was transferred in.",
    "I need to change my PIN because I think somebody saw me typing it in a shop.",
    "My direct debit for the gym was taken twice this month and I want one of them back.",
    "I am travelling next week and want to make sure my card will not be blocked abroad.",
    "Someone may have stolen my wallet on the train and my card was inside it.",
]
CLOSINGS = [
    "Thanks in advance.", "Please help me as soon as possible.", "Kind regards.", "Thank you.", "Looking forward to your reply.",
    "This is really frustrating.", "Cheers.", "Many thanks for your help.",
]  # fmt: skip


def generate(path: Path, head_path: Path, rows: int, head_rows: int, seed: int = 7) -> None:
    """Write `rows` distinct JSON Lines rows to `path` and the first `head_rows` of them to `head_path`."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with path.open("w", encoding="utf-8") as full, head_path.open("w", encoding="utf-8") as head:
        for number in range(rows):
            target = rng.randint(200, 600)
            parts = [rng.choice(OPENINGS)]
            length = len(parts[0])
            while length < target - 40:
                sentence = rng.choice(SENTENCES)
                parts.append(sentence)
                length += len(sentence) + 1
            parts.append(f"Ticket {number:07d}.")
            parts.append(rng.choice(CLOSINGS))
            text = " ".join(parts)[:600]
            row = {
                "input": text,
                "output": rng.choice(LABELS),
                "usage": {"prompt_tokens": len(text) // 4 + 30, "completion_tokens": rng.randint(2, 8)},
                "timestamp": (start + timedelta(seconds=number * 7)).isoformat(),
            }
            line = json.dumps(row, ensure_ascii=False) + "\n"
            full.write(line)
            if number < head_rows:
                head.write(line)


# ---------------------------------------------------------------------------------------------- children


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings.local")
    os.environ["DEBUG"] = "0"  # DEBUG keeps every query in memory; the benchmark measures production behaviour
    import django

    django.setup()


def child_ingest(upload_id: int) -> None:
    _setup_django()
    from training.services.examples import upload_process

    started = time.perf_counter()
    outcome = upload_process(upload_id=upload_id)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "status": outcome.status}))


def child_baseline(path: str, tenant_id: int, task_id: int) -> None:
    import hashlib

    import orjson
    import psycopg

    database_url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    started = time.perf_counter()
    now = datetime.now(UTC)
    rows = 0
    columns = (
        "tenant_id, task_id, source, split, input, output, content_hash, input_tokens, output_tokens, model, "
        "logged_at, metadata, created_at"
    )
    with psycopg.connect(database_url) as connection, open(path, "rb") as source:
        batch: list[tuple] = []

        def flush() -> None:
            with (
                connection.transaction(),
                connection.cursor() as cursor,
                cursor.copy(f"COPY training_example ({columns}) FROM STDIN") as copy,
            ):
                for values in batch:
                    copy.write_row(values)
            batch.clear()

        for line in source:
            row = orjson.loads(line)
            usage = row["usage"]
            batch.append(
                (
                    tenant_id, task_id, "upload", "train", row["input"], row["output"],
                    hashlib.sha256(line).hexdigest(), usage["prompt_tokens"], usage["completion_tokens"], "",
                    row["timestamp"], "{}", now,
                )
            )  # fmt: skip
            rows += 1
            if len(batch) >= 2000:
                flush()
        if batch:
            flush()
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident set size. VmHWM restarts at exec; ru_maxrss would carry over the
    parent's peak across fork + exec on Linux."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_child(*args: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, cwd=REPO_ROOT, env=os.environ.copy()
    )
    if result.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--head-rows", type=int, default=100_000, help="rows of the smaller run (RSS flatness)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's tenant and rows")
    parser.add_argument("--workdir", default=None, help="folder for the generated files (default: a temp folder)")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database (the benchmark compares against COPY).")

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ingest-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    head_rows = min(args.head_rows, args.rows)
    full_path, head_path = workdir / f"rows-{args.rows}.jsonl", workdir / f"rows-{head_rows}.jsonl"
    started = time.perf_counter()
    generate(full_path, head_path, args.rows, head_rows)
    print(
        f"generated {args.rows:,} rows ({full_path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - started:.0f} s"
    )

    _setup_django()
    from django.core.files import File
    from django.core.management import call_command

    from tenants import services as tenant_services
    from training.models import Example
    from training.services import examples as example_services
    from training.services import tasks as task_services

    call_command("migrate", verbosity=0)
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    owner, _ = tenant_services.user_get_or_create(email=f"bench-{stamp}@example.com")
    tenant = tenant_services.tenant_create(slug=f"bench-{stamp}", name="Ingest benchmark", owner=owner)

    def new_task(slug: str):
        return task_services.task_create(
            tenant=tenant,
            slug=slug,
            name=slug,
            kind="classification",
            labels=LABELS,
            frontier_model="gpt-4o",
            actor="bench",
        )

    def ingest(path: Path, rows: int) -> dict:
        task = new_task(f"ingest-{rows}")
        with path.open("rb") as handle:
            upload = example_services.example_upload_create(
                task=task, file=File(handle, name=path.name), actor="bench", enqueue=False
            )
        result = _run_child("--child-ingest", str(upload.pk))
        upload.refresh_from_db()
        if (upload.rows_read, upload.accepted) != (rows, rows):
            raise SystemExit(f"ingest of {rows:,} rows: {upload.status} {upload.message}")
        return result

    try:
        baseline_task = new_task("baseline")
        baseline = _run_child("--child-baseline", str(full_path), str(tenant.pk), str(baseline_task.pk))
        print(
            f"baseline COPY: {args.rows:,} rows in {baseline['seconds']:.1f} s, peak RSS {baseline['peak_rss_mb']:.0f} MB"
        )
        full = ingest(full_path, args.rows)
        print(f"ingest: {args.rows:,} rows in {full['seconds']:.1f} s, peak RSS {full['peak_rss_mb']:.0f} MB")
        head = ingest(head_path, head_rows)
        print(f"ingest: {head_rows:,} rows in {head['seconds']:.1f} s, peak RSS {head['peak_rss_mb']:.0f} MB")

        baseline_rate = args.rows / baseline["seconds"]
        ingest_rate = args.rows / full["seconds"]
        ratio = ingest_rate / baseline_rate
        print()
        print(f"rows/s  ingest (upload path): {ingest_rate:,.0f}")
        print(f"rows/s  bare psycopg COPY:    {baseline_rate:,.0f}")
        print(f"ratio   ingest / COPY:        {ratio:.2f}   (target >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})")
        print(f"peak RSS {head_rows:,} rows:      {head['peak_rss_mb']:.0f} MB")
        print(f"peak RSS {args.rows:,} rows:    {full['peak_rss_mb']:.0f} MB")
        flat = full["peak_rss_mb"] <= 300 and full["peak_rss_mb"] <= head["peak_rss_mb"] * 1.25 + 10
        print(f"memory target (<= 300 MB, flat in the row count): {'met' if flat else 'NOT met'}")
    finally:
        if not args.keep:
            Example.objects.filter(tenant=tenant).delete()
            tenant.delete()
            owner.delete()
            if not args.workdir:
                shutil.rmtree(workdir, ignore_errors=True)  # the generated files and their stored copies


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-ingest":
        child_ingest(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-baseline":
        child_baseline(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
