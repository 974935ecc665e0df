"""Adaptive packages as job graphs: a package job becomes one ``rendition`` child per rung of its ladder
that the source can fill (never upscaled), one audio rendition, and a ``storyboard`` child when asked for.

The plan is made once, by the transcoder that takes the package, and kept in the ``mpr-packages`` KV
bucket: a redelivered package reuses it, and a child job is run only as its package's plan describes it
(a child published by anyone else, or altered, fails as invalid)."""

from __future__ import annotations

import posixpath

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from mpr_common.bus import retry_transient
from mpr_common.codec import decode, encode
from mpr_common.events import JobRequested, MediaInfo, new_id, now
from mpr_common.jobs import JobRequestError
from mpr_common.presets import AUDIO_RENDITION, DEFAULT_PRESET, PRESETS, STORYBOARD_VTT, Preset, Rung

AUDIO_WEIGHT = 0.3  # encoding AAC costs little beside any video rung
STORYBOARD_WEIGHT = 0.3


class PackagePlan(msgspec.Struct, kw_only=True):
    v: int = 1
    package: JobRequested  # normalised
    children: list[JobRequested]
    planned_at: float = msgspec.field(default_factory=now)
    # In the children's Nats-Msg-Id: nobody can guess it to publish a look-alike that de-duplication
    # would keep in place of the real child.
    nonce: str = msgspec.field(default_factory=new_id)

    @property
    def folder(self) -> str:
        assert self.package.output_key is not None
        return posixpath.dirname(self.package.output_key)

    def msg_id(self, child: JobRequested) -> str:
        return f"{child.job_id}.{self.nonce}"

    def child(self, job_id: str) -> JobRequested | None:
        return next((c for c in self.children if c.job_id == job_id), None)


def ladder_rungs(preset: Preset, info: MediaInfo) -> tuple[Rung, ...]:
    """The rungs a source gets: those not taller than the source (never upscale); a source shorter than
    every rung gets the lowest ones, at its own height (the scale filter never upscales). No video stream
    or no known height: none."""
    if info.video_codec is None or not info.height or not preset.ladder:
        return ()
    fitting = tuple(r for r in preset.ladder if r.height <= info.height)
    if not fitting:
        lowest = min(r.height for r in preset.ladder)
        fitting = tuple(r for r in preset.ladder if r.height == lowest)
    return fitting


def child_id(package_id: str, name: str) -> str:
    return f"{package_id}-{name}"


def plan_package(package: JobRequested, info: MediaInfo) -> PackagePlan:
    """``package`` must be normalised. Raises :class:`JobRequestError` when the source cannot make one."""
    preset = PRESETS[package.preset or DEFAULT_PRESET["package"]]
    assert package.output_key is not None
    if info.video_codec is None or not info.height:
        raise JobRequestError("a package needs a source with a video stream")
    folder = posixpath.dirname(package.output_key)
    # Heaviest first: the longest child starts first, so the package's tail is short.
    fitting = sorted(ladder_rungs(preset, info), key=lambda r: -r.weight)
    # What every child shares with its package; each child replaces what is its own.
    base = JobRequested(
        job_id="",
        kind="rendition",
        source_key=package.source_key,
        source_bucket=package.source_bucket,
        output_bucket=package.output_bucket,
        requested_by=package.requested_by,
        parent_id=package.job_id,
        preset=preset.name,
        priority=package.priority,
    )
    replace = msgspec.structs.replace

    def rendition(name: str, weight: float, loudnorm: bool = False) -> JobRequested:
        return replace(
            base,
            job_id=child_id(package.job_id, name),
            rendition=name,
            output_key=f"{folder}/{name}.m3u8",
            weight=weight,
            loudnorm=loudnorm,
        )

    children = [rendition(r.name, r.weight) for r in fitting]
    if info.audio_codec is not None:
        children.append(rendition(AUDIO_RENDITION, AUDIO_WEIGHT, package.loudnorm))
    if package.storyboard:
        children.append(
            replace(
                base,
                job_id=child_id(package.job_id, "storyboard"),
                kind="storyboard",
                preset=DEFAULT_PRESET["storyboard"],
                output_key=f"{folder}/{STORYBOARD_VTT}",
                weight=STORYBOARD_WEIGHT,
            )
        )
    return PackagePlan(package=package, children=children)


def as_planned(job: JobRequested, plan: PackagePlan) -> JobRequested:
    """The child as its package's plan describes it; raises :class:`JobRequestError` for a job that claims
    to be a child of the package but is not one of its children as planned."""
    planned = plan.child(job.job_id)
    if planned is None:
        raise JobRequestError(f"job {job.job_id} is not a child of package {plan.package.job_id}")
    fields = ("kind", "source_key", "source_bucket", "output_key", "output_bucket", "preset", "rendition")
    if job.output_key is not None and any(
        getattr(job, f) != getattr(planned, f) for f in fields if getattr(job, f) is not None
    ):
        raise JobRequestError(f"job {job.job_id} differs from the child its package planned")
    return planned


class PackageStore:
    """Plans in the ``mpr-packages`` KV bucket, keyed by the package's job id."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def get(self, package_id: str) -> PackagePlan | None:
        try:
            entry = await retry_transient(lambda: self.kv.get(package_id), f"package plan {package_id}")
        except KeyNotFoundError:
            return None
        return decode(entry.value or b"", PackagePlan)

    async def create(self, plan: PackagePlan) -> PackagePlan:
        """Store ``plan`` unless one exists (a redelivered package): returns the plan that holds."""
        try:
            await retry_transient(
                lambda: self.kv.create(plan.package.job_id, encode(plan)),
                f"package plan {plan.package.job_id}",
            )
            return plan
        except KeyWrongLastSequenceError:
            existing = await self.get(plan.package.job_id)
            assert existing is not None
            return existing
