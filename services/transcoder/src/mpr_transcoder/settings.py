from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from mpr_common.settings import ServiceSettings


@dataclass(frozen=True, slots=True)
class TranscoderSettings(ServiceSettings):
    worker: str = field(default_factory=socket.gethostname)
    concurrency: int = 1  # FFmpeg jobs at once per replica (FFmpeg itself is multi-threaded)
    workdir: str = "/tmp/mpr-transcoder"
    ack_wait: float = 30.0  # seconds without an in-progress ack before JetStream redelivers
    max_deliver: int = 5  # deliveries before a job is failed and dead-lettered
    retry_base: float = 2.0  # NAK delay after a transient failure: base * 2^(attempt-1), capped
    retry_max: float = 60.0
    job_timeout: float = 6 * 3600.0
    probe_timeout: float = 60.0
    max_output_bytes: int = 50 * 1024**3
    progress_interval: float = 1.0
    shutdown_grace: float = 20.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TranscoderSettings:
        e = os.environ if env is None else env
        d = cls
        return cls(
            **cls.common_from_env(e),
            worker=e.get("MPR_INSTANCE") or e.get("HOSTNAME") or socket.gethostname(),
            concurrency=int(e.get("TRANSCODER_CONCURRENCY", "1")),
            workdir=e.get("TRANSCODER_WORKDIR", d.workdir),
            ack_wait=float(e.get("TRANSCODER_ACK_WAIT", "30")),
            max_deliver=int(e.get("TRANSCODER_MAX_DELIVER", "5")),
            retry_base=float(e.get("TRANSCODER_RETRY_BASE", "2")),
            retry_max=float(e.get("TRANSCODER_RETRY_MAX", "60")),
            job_timeout=float(e.get("TRANSCODER_JOB_TIMEOUT", str(6 * 3600))),
            probe_timeout=float(e.get("TRANSCODER_PROBE_TIMEOUT", "60")),
            max_output_bytes=int(e.get("TRANSCODER_MAX_OUTPUT_BYTES", str(50 * 1024**3))),
            progress_interval=float(e.get("TRANSCODER_PROGRESS_INTERVAL", "1")),
            shutdown_grace=float(e.get("TRANSCODER_SHUTDOWN_GRACE", "20")),
        )
