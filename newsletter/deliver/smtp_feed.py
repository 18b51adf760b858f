"""The hand-off between ``SmtpTransport.send_many`` and its connection threads: a queued
job per message, and the feed one connection's stream takes its messages from."""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from newsletter.deliver.transport import OutgoingMessage, SendResult


@dataclass(frozen=True, slots=True)
class Job:
    message: OutgoingMessage
    done: queue.SimpleQueue[SendResult]


class Feed:
    """What one worker's stream takes: its first job, then whatever is queued (no waiting)."""

    def __init__(
        self,
        work: queue.SimpleQueue[Job | None],
        first: Job,
        paced: Callable[[OutgoingMessage | None], OutgoingMessage | None],
    ) -> None:
        self.work, self.paced = work, paced
        self.first: Job | None = first
        self.jobs: dict[int, deque[Job]] = {}

    def take(self) -> OutgoingMessage | None:
        job, self.first = self.first, None
        if job is None:
            try:
                job = self.work.get_nowait()
            except queue.Empty:
                return None
            if job is None:  # the stop signal belongs to the outer loop: put it back
                self.work.put(None)
                return None
        self.jobs.setdefault(id(job.message), deque()).append(job)
        return self.paced(job.message)

    def job_for(self, message: OutgoingMessage) -> Job:
        queued = self.jobs[id(message)]
        job = queued.popleft()
        if not queued:
            del self.jobs[id(message)]
        return job

    def unfinished(self) -> list[Job]:
        return [job for queued in self.jobs.values() for job in queued]
