"""Long studio work (fitting a direction, inverting an upload) as jobs the page polls for progress.

Jobs run one at a time on one worker thread: each is CPU-bound, and two at once on a laptop's cores
would only make both slower. A job asked for again while it is queued or running (two tabs fitting
the same direction) is joined, not run twice; the second caller is told so.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ganforge import GanforgeError


class JobProgress:
    """What a method reports while it works: ``total`` units, ``advance()`` per unit (the duck type
    :class:`ganforge.Progress` offers to inversion methods and editors)."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.info = ""

    def advance(self, n: int = 1, info: str = "") -> None:
        self.done += n
        self.info = info or self.info

    def update(self, done: int, info: str = "") -> None:
        self.done = done
        self.info = info or self.info

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total > 0 else None


class Job:
    def __init__(self, job_id: str, key: str, label: str) -> None:
        self.id, self.key, self.label = job_id, key, label
        self.status = "queued"  # queued -> running -> done | failed
        self.progress = JobProgress()
        self.result: dict[str, Any] | None = None
        self.error = ""
        self.created = time.monotonic()
        self.started: float | None = None
        self.finished: float | None = None

    def view(self, ahead: int) -> dict[str, Any]:
        now = time.monotonic()
        elapsed = (self.finished or now) - self.started if self.started is not None else 0.0
        out: dict[str, Any] = {"id": self.id, "label": self.label, "status": self.status,
                               "progress": self.progress.fraction, "elapsed": round(elapsed, 1)}
        if self.status == "queued":
            out["message"] = f"waiting for {ahead} job{'s' if ahead != 1 else ''} ahead of it"
        elif self.status == "running":
            done = f"{self.progress.done} of {self.progress.total}" if self.progress.total else "working"
            out["message"] = f"{self.label}: {done} ({elapsed:.0f} s)"
        elif self.status == "failed":
            out["message"] = self.error
        else:
            out["message"] = f"{self.label}: done in {elapsed:.1f} s"
            out["result"] = self.result
        return out


class Jobs:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ganforge-studio-job")
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._active: dict[str, Job] = {}  # key -> queued or running job
        self._ids = itertools.count(1)

    def submit(self, key: str, label: str, work: Callable[[JobProgress], dict[str, Any]]) -> tuple[Job, bool]:
        """The job for ``key``: a new one running ``work``, or the one already queued or running
        (then ``joined`` is True)."""
        with self._lock:
            if key in self._active:
                return self._active[key], True
            job = Job(f"job-{next(self._ids)}", key, label)
            self._jobs[job.id] = job
            self._active[key] = job
        self._pool.submit(self._run, job, work)
        return job, False

    def _run(self, job: Job, work: Callable[[JobProgress], dict[str, Any]]) -> None:
        job.status, job.started = "running", time.monotonic()
        try:
            job.result = work(job.progress)
            job.status = "done"
        except GanforgeError as exc:
            job.error, job.status = str(exc), "failed"
        except Exception as exc:  # the page gets a sentence; the server's log keeps the traceback
            traceback.print_exc(file=sys.stderr)
            job.error, job.status = f"{job.label} failed: {type(exc).__name__}: {exc} (details in the server's log)", \
                "failed"
        finally:
            job.finished = time.monotonic()
            with self._lock:
                self._active.pop(job.key, None)

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            ahead = sum(1 for j in self._active.values() if j.created < job.created)
        return job.view(ahead)

    def wait(self, job_id: str, timeout: float) -> dict[str, Any] | None:
        """The job's view once it has finished (or at ``timeout``): for tests and scripts."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.get(job_id)
            if view is None or view["status"] in ("done", "failed") or time.monotonic() > deadline:
                return view
            time.sleep(0.02)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
