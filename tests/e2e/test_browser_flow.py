"""The whole loop as a user lives it, in a real browser (headless Chromium driven by Playwright):
sign up, create the organisation, create an API key, register a classification task, upload a banking77
slice and watch the progress bar, train MiniLM and watch the job's progress bar, open the model version,
publish it to routing; then a separate process with `routing/client.py` and the key fetches the table
and routes. Screenshots of each step go to E2E_ARTIFACTS_DIR (default var/test-artifacts/e2e).

The product runs as it does for a user: `runserver` and a Celery worker as separate processes on a
fresh DATA_DIR (SQLite, file broker), started here."""

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LABELS = [
    "card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_failed", "pin_blocked",
    "atm_support", "age_limit", "change_pin", "country_support", "visa_or_mastercard",
]  # fmt: skip

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.xdist_group("integration")]


def _skip_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    if not Path(CHROMIUM).exists():
        return "Chromium is not installed (apt-get install chromium); .ci/run installs it"
    return None


@contextlib.contextmanager
def product_stack(data_dir: Path, port: int):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "PYTEST_", "CACHE_URL"))},
        "DJANGO_SETTINGS_MODULE": "controlplane.settings.local",
        "DATA_DIR": str(data_dir),
        "CELERY_BROKER_URL": "filesystem://",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                   capture_output=True)  # fmt: skip
    log = (data_dir / "stack.log").open("wb")
    processes = [
        subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True),
        subprocess.Popen([sys.executable, "-m", "celery", "-A", "controlplane", "worker", "-Q",
                          "default,ingest,training", "--concurrency", "1", "--loglevel", "INFO"],
                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/login/", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                    raise RuntimeError((data_dir / "stack.log").read_text()[-4000:]) from None
                time.sleep(0.3)
        yield base, env
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()


def write_slice(path: Path) -> int:
    """A banking77 slice with ten intents (CC BY 4.0, see tests/fixtures/README.md)."""
    with (ROOT / "tests/fixtures/banking77_train_2000.csv").open() as source:
        rows = [row for row in csv.DictReader(source) if row["category"] in LABELS]
    with path.open("w", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def test_sign_up_to_routed_request(tmp_path):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    artifacts = Path(os.environ.get("E2E_ARTIFACTS_DIR", ROOT / "var/test-artifacts/e2e"))
    artifacts.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="cp-e2e-"))
    upload_file = tmp_path / "banking77-slice.csv"
    row_count = write_slice(upload_file)

    with product_stack(data_dir, free_port()) as (base, _env), sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        shot = iter(range(1, 100))

        def screenshot(name: str) -> None:
            page.screenshot(path=str(artifacts / f"{next(shot):02d}-{name}.png"), full_page=True)

        # 1. Sign up and create the organisation.
        page.goto(f"{base}/signup/")
        page.fill("input[name=email]", "ada@example.com")
        page.fill("input[name=password1]", "a-long-pass-phrase-42")
        page.fill("input[name=password2]", "a-long-pass-phrase-42")
        page.click("button[type=submit]")
        page.fill("input[name=name]", "Ada Bank")
        page.fill("input[name=slug]", "ada-bank")
        screenshot("create-organisation")
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Get started")
        screenshot("onboarding")

        # 2. An API key, shown once.
        page.goto(f"{base}/settings/api-keys/")
        page.fill("input[name=name]", "ticket-service")
        page.click("form >> text=Create key")
        key = page.inner_text("#new-key-value").strip()
        assert re.fullmatch(r"cp[0-9a-f]{10}_[A-Za-z0-9_-]{40,}", key), key
        screenshot("api-key-created")

        # 3. A classification task.
        page.goto(f"{base}/tasks/new/")
        page.fill("input[name=name]", "Support tickets")
        page.fill("input[name=slug]", "support-tickets")
        page.select_option("select[name=kind]", "classification")
        page.fill("textarea[name=labels]", "\n".join(LABELS))
        page.fill("input[name=frontier_model]", "gpt-4o")
        screenshot("register-task")
        page.click("#task-form button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Support tickets")

        # 4. Upload the slice and watch the progress bars.
        page.goto(f"{base}/tasks/support-tickets/upload/")
        page.set_input_files("input[name=file]", str(upload_file))
        page.select_option("select[name=format]", "csv")
        page.fill("input[name=input_column]", "text")
        page.fill("input[name=output_column]", "category")
        page.click("#upload-button")
        expect(page.locator("#upload-progress")).to_be_visible()
        expect(page.locator("#upload-links a").first).to_be_visible(timeout=120_000)  # shown when finished
        expect(page.locator("#upload-status")).to_contain_text("Done")
        screenshot("upload-finished")
        counts = {
            name: int(page.inner_text(f"#count-{name}").replace(",", ""))
            for name in ("rows_read", "accepted", "rejected", "duplicates")
        }
        assert counts["rows_read"] == row_count
        assert counts["accepted"] + counts["rejected"] + counts["duplicates"] == row_count
        assert counts["accepted"] >= row_count - 5

        # 5. Train MiniLM with the defaults and watch the job's progress bar.
        page.goto(f"{base}/tasks/support-tickets/train/")
        page.select_option("select[name=base_model]", "minilm-l6")
        screenshot("start-training")
        page.click("#training-job-form button[type=submit]")
        expect(page.locator(".progress:has(#job-progress-bar)")).to_be_visible()
        saw_progress = False
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            state = page.inner_text("#job-state").strip().lower()
            if not saw_progress and 0 < float(page.inner_text("#job-percent") or 0) < 100:
                saw_progress = True
                screenshot("training-in-progress")
            if state in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(1)
        screenshot("training-finished")
        assert state == "succeeded", page.inner_text("#job-error")
        assert saw_progress, "the job page never showed a partial progress bar"

        # 6. The model version, then publish it to routing.
        page.click("#job-model-version a")
        expect(page.locator("#coverage-chart")).to_be_visible()
        screenshot("model-version")
        threshold_input = page.locator("#publish-threshold")
        if threshold_input.count():
            threshold_input.fill("0.5")  # calibration found no threshold meeting the target: choose one
        page.click("#publish-to-routing button[type=submit]")
        page.goto(f"{base}/routing/")
        expect(page.locator("body")).to_contain_text("support-tickets")
        screenshot("routing-published")
        browser.close()

        # 7. A separate process with the vendored client fetches the table and routes.
        vendored = tmp_path / "tenant_service"
        vendored.mkdir()
        shutil.copy(ROOT / "routing/client.py", vendored / "routing_client.py")  # as a tenant vendors it
        script = f"""
import json
from routing_client import RoutingClient
with RoutingClient({base!r}, {key!r}, refresh_seconds=60) as client:
    confident = client.decide("support-tickets", 0.999, request_key="r1")
    unsure = client.decide("support-tickets", 0.0, request_key="r2")
    other = client.decide("not-a-task", 0.99)
    client.report(task="support-tickets", route=confident.route, confidence=0.999, fell_back=False)
    print(json.dumps({{"version": client.table_version, "confident": confident._asdict(),
                      "unsure": unsure._asdict(), "other": other._asdict()}}))
"""
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=vendored
        )
        assert result.returncode == 0, result.stderr
        routed = json.loads(result.stdout.strip().splitlines()[-1])
        assert routed["version"] >= 1
        assert routed["confident"]["route"] == "small" and routed["confident"]["reason"] == "above_threshold"
        assert routed["unsure"]["route"] == "frontier" and routed["unsure"]["model"] == "gpt-4o"
        assert routed["other"]["reason"] == "not_in_scope"
    shutil.rmtree(data_dir, ignore_errors=True)
