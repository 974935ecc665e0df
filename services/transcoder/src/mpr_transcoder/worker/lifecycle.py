"""A transcoder's lifecycle on NATS: bind to the queue and the state buckets, run a job per free slot
(pulled by :mod:`.pulling`, each delivery handled by :mod:`.attempt`), and on SIGTERM stop fetching, stop
FFmpeg, NAK unfinished work for another replica and drain.

One shared durable pull consumer per queue class (urgent, normal,
bulk) served by a weighted schedule (:mod:`.scheduler`), paused classes left alone, explicit acks,
in-progress acks while FFmpeg runs, NAK with backoff for transient failures, dead letters after
MaxDeliver, and a prompt NAK of unfinished work on SIGTERM.

Written on nats-py directly rather than a FastStream subscriber: the worker loop needs exact control of
when and from which class it fetches (only with a free slot), of in-progress acks during a long FFmpeg
run, of NAK delays, and of the order of shutdown (stop fetching, kill FFmpeg, NAK, drain)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from mpr_common import subjects as s
from mpr_common.codec import DecodeError, ValidationError, decode
from mpr_common.content_keys import ContentKeys, KeyWrap
from mpr_common.events import JobCancel
from mpr_common.jobs import BucketPolicy
from mpr_common.jobstate import JobState, QueuePlaces
from mpr_common.metrics import CONSUMER_ACK_PENDING, CONSUMER_PENDING, CONSUMER_PRESENT
from mpr_common.outputs import OutputOwners
from mpr_common.runtime import freeze_startup_heap
from mpr_common.s3_client import S3Client

from ..kinds.graph.registry import JobGraphs
from ..kinds.package.analysis import Analyser
from ..kinds.package.children import PackageStore
from ..kinds.package.chord import Packager
from ..kinds.transcode.graph import TranscodeGraph, TranscodeStore
from ..limits import Limits
from ..scene_store import SceneStore
from ..settings import TranscoderSettings
from ..source_info import catalog_probe
from .attempt import Attempt
from .pause_flags import PauseFlags
from .pulling import Puller, wait_for
from .running import Running
from .scheduler import Scheduler

log = logging.getLogger("mpr.transcoder")

BIND_RETRY = 1.0


class Worker:
    def __init__(self, settings: TranscoderSettings, nc: Client, s3: S3Client) -> None:
        self.settings = settings
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.s3 = s3
        self.job_state: JobState | None = None
        self.owners: OutputOwners | None = None
        self.content_keys: ContentKeys | None = None  # with MPR_KEY_SECRET: encrypted packages' keys
        self.scenes: SceneStore | None = None  # sources' scene changes, bound in setup
        self.graphs = JobGraphs()  # bound in setup
        self.places: QueuePlaces | None = None
        self.flags: PauseFlags | None = None
        self.classes = settings.served_classes()
        self.scheduler = Scheduler(self.classes, settings.share_every)
        # The consumers' own settings (their owner, mpr-setup, chose them): read back when binding.
        self.ack_wait = 30.0
        self.max_deliver = 1
        self.stopping = asyncio.Event()
        self.consumers_present = dict.fromkeys(self.classes, True)
        self.running: dict[str, Running] = {}
        self.tasks: set[asyncio.Task] = set()
        # The catalog's probe of a source, when it has one: saves running ffprobe again.
        self.known_info = functools.partial(catalog_probe, self.js)
        self.policy = BucketPolicy.of(settings.s3)
        self.limits = Limits.from_settings(settings)

    async def setup(self) -> None:
        """Bind to the KV buckets and the class consumers that mpr-setup made (waiting for them), and
        read which classes are paused."""
        while True:
            try:
                state_kv = await self.js.key_value(s.JOB_STATE_KV)
                self.job_state = JobState(state_kv)
                self.places = QueuePlaces(state_kv)
                self.flags = PauseFlags(await self.js.key_value(s.QUEUES_KV), self.classes)
                self.owners = OutputOwners(await self.js.key_value(s.OUTPUT_OWNERS_KV))
                plans = await self.js.key_value(s.PACKAGES_KV)
                self.scenes = SceneStore(await self.js.key_value(s.SCENES_KV), self.settings.instance)
                if self.settings.key_secret:
                    self.content_keys = ContentKeys(
                        await self.js.key_value(s.CONTENT_KEYS_KV), KeyWrap(self.settings.key_secret)
                    )
                out, me = self.settings.s3.bucket_out, self.settings.instance
                window = self.settings.release_window
                self.graphs = JobGraphs(
                    Packager(
                        *(self.js, self.s3, self.job_state, PackageStore(plans), out, me, self.owners),
                        window=window,
                        bucket_in=self.settings.s3.bucket_in,
                        content_keys=self.content_keys,
                        analyser=Analyser(self.settings.workdir, self.limits),
                        scenes=self.scenes,
                    ),
                    TranscodeGraph(
                        *(self.js, self.s3, self.job_state, TranscodeStore(plans), out, me, self.owners),
                        workdir=self.settings.workdir,
                        limits=self.limits,
                        window=window,
                        bucket_in=self.settings.s3.bucket_in,
                        scenes=self.scenes,
                    ),
                )
                infos = [
                    await self.js.consumer_info(s.JOBS_STREAM, s.transcoders_durable(c)) for c in self.classes
                ]
                break
            except Exception as exc:
                if self.stopping.is_set():
                    raise
                log.warning("waiting for the job queue (run mpr-setup): %s", exc)
                await asyncio.sleep(BIND_RETRY)
        self.ack_wait = min(float(i.config.ack_wait or self.ack_wait) for i in infos)
        self.max_deliver = min(int(i.config.max_deliver or self.max_deliver) for i in infos)
        await self.nc.subscribe(s.JOB_CANCEL, cb=self._on_cancel)

    async def run(self) -> None:
        await self.setup()
        assert self.flags is not None
        watch = asyncio.create_task(self.flags.follow(self.nc, self.stopping))
        # Nothing is fetched before the pause flags are known: a replica started while a class is
        # paused must not take its jobs.
        while not self.flags.loaded.is_set() and not self.stopping.is_set():
            await wait_for(self.stopping, self.flags.loaded, 5.0)
            if not self.flags.loaded.is_set():
                log.warning("waiting for the queue flags (%s)", s.QUEUES_KV)
        slots = asyncio.Semaphore(self.settings.concurrency)
        log.info(
            "transcoder %s ready (concurrency %d, classes %s)",
            self.settings.instance,
            self.settings.concurrency,
            ", ".join(self.classes),
        )
        freeze_startup_heap()
        puller = Puller(self.nc, self.classes, self.scheduler, self.flags, self.stopping)
        while not self.stopping.is_set():
            await slots.acquire()
            got = await puller.next_job()
            if got is None:  # stopping
                slots.release()
                break
            cls, msg = got
            task = asyncio.create_task(self._handle(msg, cls))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            task.add_done_callback(lambda _: slots.release())
        watch.cancel()
        await self._shutdown()

    @property
    def consumer_present(self) -> bool:
        return all(self.consumers_present.values())

    def ready(self) -> bool:
        # A lost consumer is a total outage of its class that no other probe shows: jobs would queue silently.
        return self.nc.is_connected and self.consumer_present and not self.stopping.is_set()

    async def watch_lag(self, every: float = 5.0) -> None:
        """Each class consumer's lag as metrics (what KEDA scales on, seen from inside), and its presence."""
        while not self.stopping.is_set():
            for cls in self.classes:
                await self._check_consumer(cls)
            await asyncio.sleep(every)

    async def _check_consumer(self, cls: str) -> None:
        labels = (s.JOBS_STREAM, s.transcoders_durable(cls))
        present = self.consumers_present[cls]
        try:
            info = await self.js.consumer_info(*labels)
        except NotFoundError:
            if present:
                log.error("the %s consumer is gone: no job will run until mpr-setup re-creates it", labels[1])
            present = False
        except Exception as exc:  # NATS reconnecting: the connection check covers it
            log.debug("consumer info: %s", exc)
        else:
            if not present:
                log.info("the %s consumer is back", labels[1])
            present = True
            CONSUMER_PENDING.labels(*labels).set(info.num_pending or 0)
            CONSUMER_ACK_PENDING.labels(*labels).set(info.num_ack_pending or 0)
        self.consumers_present[cls] = present
        CONSUMER_PRESENT.labels(*labels).set(int(present))

    def stop(self) -> None:
        """Stop fetching; unfinished jobs are stopped and NAKed for another replica."""
        if not self.stopping.is_set():
            log.info("stopping: %d job(s) in flight will be handed back", len(self.running))
            self.stopping.set()
            for r in self.running.values():
                r.cancel.set()

    async def _shutdown(self) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=self.settings.shutdown_grace)
        with contextlib.suppress(Exception):
            await self.nc.drain()

    async def _on_cancel(self, msg: Msg) -> None:
        with contextlib.suppress(DecodeError, ValidationError):
            ev = decode(msg.data, JobCancel)
            for r in self.running.values():  # the job, or the children of a package
                if ev.job_id in (r.job_id, r.parent_id):
                    r.cancel.set()

    # --- one message: see .attempt ----------------------------------------------------------------
    async def _handle(self, msg: Msg, cls: str) -> None:
        await Attempt(self, msg, cls).handle()
