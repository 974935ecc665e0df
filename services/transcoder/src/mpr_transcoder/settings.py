from __future__ import annotations

from dataclasses import dataclass

from mpr_common.settings import ServiceSettings, env


@dataclass(frozen=True, slots=True)
class TranscoderSettings(ServiceSettings):
    # FFmpeg jobs at once per replica (FFmpeg itself is multi-threaded)
    concurrency: int = env("TRANSCODER_CONCURRENCY", default=1)
    workdir: str = env("TRANSCODER_WORKDIR", default="/tmp/mpr-transcoder")
    # NAK delay after a transient failure: base * 2^(attempt-1), capped at retry_max
    retry_base: float = env("TRANSCODER_RETRY_BASE", default=2.0)
    retry_max: float = env("TRANSCODER_RETRY_MAX", default=60.0)
    job_timeout: float = env("TRANSCODER_JOB_TIMEOUT", default=6 * 3600.0)
    probe_timeout: float = env("TRANSCODER_PROBE_TIMEOUT", default=60.0)
    max_output_bytes: int = env("TRANSCODER_MAX_OUTPUT_BYTES", default=50 * 1024**3)
    progress_interval: float = env("TRANSCODER_PROGRESS_INTERVAL", default=1.0)
    shutdown_grace: float = env("TRANSCODER_SHUTDOWN_GRACE", default=20.0)
