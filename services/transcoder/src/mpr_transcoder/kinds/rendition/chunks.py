"""(placeholder until the media core lands: replaced by it)"""

from __future__ import annotations

import math

from mpr_common.events import ChunkSpan
from mpr_common.jobs import MAX_CHUNKS
from mpr_common.presets import Preset


def plan_chunks(
    duration: float, preset: Preset, chunk_seconds: float, *, first_chunk_segments: int = 1
) -> list[ChunkSpan]:
    if chunk_seconds <= 0:
        raise ValueError("chunk_seconds must be positive")
    seg = float(preset.hls_segment_seconds or 0)
    per = max(1, math.ceil(chunk_seconds / seg - 1e-9))
    total = max(1, math.ceil(duration / seg - 1e-9))
    if total > first_chunk_segments:
        per = max(per, math.ceil((total - first_chunk_segments) / (MAX_CHUNKS - 1)))
    bounds = [0, min(first_chunk_segments, total)]
    while bounds[-1] < total:
        bounds.append(min(bounds[-1] + per, total))
    spans = []
    for i in range(len(bounds) - 1):
        last = i == len(bounds) - 2
        spans.append(
            ChunkSpan(
                index=i,
                start=bounds[i] * seg,
                end=None if last else bounds[i + 1] * seg,
                first_segment=bounds[i],
            )
        )
    return spans


def stitch(renditions):  # placeholder
    import msgspec

    first = renditions[0]
    segs = [d for r in renditions for d in r.segments]
    return msgspec.structs.replace(first, segments=segs, bandwidth=max(r.bandwidth for r in renditions))


def media_playlist(rendition, *, ended: bool) -> str:  # placeholder
    import math

    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{math.ceil(max(rendition.segments))}"]
    lines += [
        f"#EXT-X-MEDIA-SEQUENCE:{rendition.start_number}",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    lines += [f'#EXT-X-MAP:URI="{rendition.init}"']
    for i, d in enumerate(rendition.segments):
        lines += [f"#EXTINF:{d:.6f},", rendition.media_pattern % (rendition.start_number + i)]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
