"""Run the web server and a Celery worker in one foreground command; Ctrl-C stops both cleanly."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from controlplane.celery_app import Queue


class Command(BaseCommand):
    help = "Serve the UI and API on 127.0.0.1:PORT and run a worker consuming every queue."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args, port, host, concurrency, **options):
        python = sys.executable
        queues = ",".join(q.value for q in Queue)
        commands = {
            "web": [python, "manage.py", "runserver", f"{host}:{port}", "--noreload"],
            "worker": [
                python, "-m", "celery", "-A", "controlplane", "worker", "-Q", queues,
                "--concurrency", str(concurrency), "--beat", "--loglevel", "INFO",
                "--schedule", str(settings.DATA_DIR / "celerybeat-schedule"),
            ],
        }  # fmt: skip
        # Samples of processes from an earlier run would be merged into /metrics forever: start clean.
        for stale in settings.METRICS_DIR.glob("*.db"):
            stale.unlink()
        processes = {name: subprocess.Popen(cmd) for name, cmd in commands.items()}
        self.stdout.write(self.style.SUCCESS(f"Serving on http://{host}:{port}/ with a worker on queues {queues}."))
        self.stdout.write("Press Ctrl-C to stop.")

        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    self.stderr.write(f"{name} exited with {process.returncode}; stopping.")
                    exit_code = process.returncode or 1
                    stopping = True
            time.sleep(0.3)
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        self.stdout.write("Stopped.")
        sys.exit(exit_code)
