from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mpr_common.content_keys import KEY_SECRET_ENV
from mpr_common.events import PRIORITIES
from mpr_common.settings import ServiceSettings, env

# Why 8: mpr_transcoder.kinds.graph.release_window
DEFAULT_RELEASE_WINDOW = 8


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
    # FFmpeg's -fs, also lowered to the work dir's free space minus disk_reserve_bytes at the start of
    # each job; below the 20 Gi emptyDir of k8s/transcoder.yaml
    max_output_bytes: int = env("TRANSCODER_MAX_OUTPUT_BYTES", default=16 * 1024**3)
    # free space left in the work dir for everything else
    disk_reserve_bytes: int = env("TRANSCODER_DISK_RESERVE_BYTES", default=1024**3)
    # sources the probe finds larger or longer fail at once (8192x4320 is 8K DCI)
    max_width: int = env("TRANSCODER_MAX_WIDTH", default=8192)
    max_height: int = env("TRANSCODER_MAX_HEIGHT", default=8192)
    max_pixels: int = env("TRANSCODER_MAX_PIXELS", default=8192 * 4320)
    max_source_duration: float = env("TRANSCODER_MAX_SOURCE_DURATION", default=12 * 3600.0)
    # seconds without progress (time written, frames, bytes) before FFmpeg is stopped
    stall_timeout: float = env("TRANSCODER_STALL_TIMEOUT", default=300.0)
    # FFmpeg's and ffprobe's address space (RLIMIT_AS); 0 = none. Virtual memory, well above the resident
    # size (4K to 1080p x264 with 32 threads: 2.5 GB virtual, 0.9 GB resident): the resident size stays
    # below the pod's 4 Gi memory limit (k8s/transcoder.yaml)
    ffmpeg_max_memory: int = env("TRANSCODER_FFMPEG_MAX_MEMORY", default=4 * 1024**3)
    # Threads each FFmpeg run may use for each decoder, encoder and filter graph; 0: FFmpeg's own choice
    # (about one and a half per core for x264). 1 with TRANSCODER_CONCURRENCY=1 makes a transcoder per
    # core a sound deployment: a chunked title spread over N such replicas runs N encodes side by side
    # instead of N encoders fighting for every core.
    ffmpeg_threads: int = env("TRANSCODER_FFMPEG_THREADS", default=0)
    progress_interval: float = env("TRANSCODER_PROGRESS_INTERVAL", default=1.0)
    # how long a job's lease (mpr_common.jobstate.JobLease) stands unrenewed: a delivery that finds
    # another run's lease waits this long after its last renewal before taking the job over. Renewed
    # every min(ack_wait, lease)/3; its holder stops FFmpeg a quarter of it early when renewals fail
    # (a JetStream election of the job-state bucket must fit in that)
    lease_seconds: float = env("TRANSCODER_LEASE_SECONDS", default=60.0)
    shutdown_grace: float = env("TRANSCODER_SHUTDOWN_GRACE", default=20.0)
    # Queue classes this replica takes jobs from (comma-separated; docs/queues.md): all of them, or one per
    # Deployment where each class scales on its own lag (k8s/transcoder.yaml)
    classes: frozenset[str] = env("TRANSCODER_CLASSES", default=frozenset(PRIORITIES))
    # every Nth free slot is a share slot: it goes to the class that has waited longest (mpr_transcoder.worker.scheduler)
    share_every: int = env("TRANSCODER_SHARE_EVERY", default=4)
    # a package's children queued ahead of their completion, at least (more when slots are idle): what a
    # job submitted behind a long title waits for at most (mpr_transcoder.kinds.graph.release_window)
    release_window: int = env("TRANSCODER_RELEASE_WINDOW", default=DEFAULT_RELEASE_WINDOW)
    # Wraps encrypted packages' content keys in the mpr-content-keys KV (the API's MPR_KEY_SECRET: the
    # same value); unset, an encrypted package fails as invalid
    key_secret: str | None = env(KEY_SECRET_ENV, default=None)

    def __post_init__(self) -> None:
        if not self.lease_seconds > 0:
            raise ValueError(f"TRANSCODER_LEASE_SECONDS must be above 0 (not {self.lease_seconds})")
        if self.release_window < 1:
            raise ValueError(f"TRANSCODER_RELEASE_WINDOW must be 1 or more (not {self.release_window})")
        if self.ffmpeg_threads < 0:
            raise ValueError(f"TRANSCODER_FFMPEG_THREADS must be 0 or more (not {self.ffmpeg_threads})")

    def served_classes(self) -> tuple[str, ...]:
        """The classes served, in order of preference (urgent first)."""
        unknown = self.classes - set(PRIORITIES)
        if unknown or not self.classes:
            raise ValueError(
                f"TRANSCODER_CLASSES: one or more of {', '.join(PRIORITIES)} (not {sorted(unknown)})"
            )
        return tuple(p for p in PRIORITIES if p in self.classes)


SETTING_FIELDS = {f.name: f for f in dataclasses.fields(TranscoderSettings)}


def setting(name: str, value: object) -> str:
    """``TRANSCODER_X=value``: how a failure names the limit it hit."""
    shown = f"{value:.12g}" if isinstance(value, float) else str(value)
    return f"{SETTING_FIELDS[name].metadata['env'][0]}={shown}"
