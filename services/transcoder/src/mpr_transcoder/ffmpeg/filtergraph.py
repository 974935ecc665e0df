"""Filter graphs with values from outside the code (a watermark's text file, an image), and the escaping
that keeps such a value one value.

FFmpeg reads a filter graph at two levels: the graph parser splits filters at ``,`` ``;`` ``[`` ``]``
(a backslash escapes the next character, single quotes quote), then each filter's option parser splits
its arguments at ``:`` and ``=`` (the same quoting rules again). :func:`filter_spec` quotes each option
value for the second level (:func:`quote_value`) and escapes the whole for the first
(:func:`escape_graph`), so that no character of a value can end it, add an option or add a filter.

A watermark's text never enters the graph at all: it is written to a file of the job's work dir that
``drawtext`` reads (``textfile``, with ``expansion=none``: no ``%{...}`` is interpreted), and only that
file's path is quoted into the graph. The image is the command's second input, never a path in the
graph (no ``movie`` source, which would open any file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mpr_common.events import Watermark

from .argv import image_input

# Debian's fonts-dejavu-core (scripts/bootstrap.sh and the transcoder's image install it).
WATERMARK_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
# Labels of the watermark's graph; the picture it writes is VIDEO_OUT, what a command maps.
VIDEO_OUT = "mpr_v"
GRAPH_SPECIALS = "\\'[],;"


def quote_value(value: str) -> str:
    """``value`` as one token of a filter's option parser: in single quotes, where nothing is special
    but the quote itself, which is closed, escaped and reopened."""
    return "'" + value.replace("'", "'\\''") + "'"


def escape_graph(text: str) -> str:
    """``text`` with every character the graph parser treats specially escaped with a backslash."""
    return "".join("\\" + c if c in GRAPH_SPECIALS else c for c in text)


def filter_spec(name: str, options: dict[str, str]) -> str:
    """One filter of a graph: ``name`` (a constant) with its options, each value quoted and escaped."""
    if not options:
        return name
    return name + "=" + escape_graph(":".join(f"{k}={quote_value(v)}" for k, v in options.items()))


@dataclass(frozen=True, slots=True)
class WatermarkSource:
    """What draws a job's (normalised) watermark: the spec and, for an image, a URL of the image (a
    PNG or JPEG, checked); for a text, the file in the work dir that holds it."""

    spec: Watermark
    image_url: str | None = None
    text_file: Path | None = None


# The watermark image is the command's second input, after the source.
IMAGE_INPUT = 1


def watermark_inputs(source: WatermarkSource) -> list[str]:
    """The inputs a watermark adds after the source's (its image, :data:`IMAGE_INPUT`; none for a text)."""
    return image_input(source.image_url) if source.image_url is not None else []


def watermark_outputs(scale_chain: str, source: WatermarkSource, tail: str = "format=yuv420p") -> list[str]:
    """The output arguments that take the place of ``-map 0:v:0 -vf scale_chain``: the picture of
    :func:`watermark_graph`."""
    return ["-filter_complex", watermark_graph(scale_chain, source, tail), "-map", f"[{VIDEO_OUT}]"]


def _place(position: str, margin: int, main_w: str, main_h: str, w: str, h: str) -> tuple[str, str]:
    """x and y expressions that put a ``w``x``h`` mark at ``position`` of a ``main_w``x``main_h``
    picture, ``margin`` pixels from its edges."""
    m = str(margin)
    x = {"left": m, "right": f"{main_w}-{w}-{m}"}
    y = {"top": m, "bottom": f"{main_h}-{h}-{m}"}
    if position == "center":
        return f"({main_w}-{w})/2", f"({main_h}-{h})/2"
    vertical, horizontal = position.split("-")
    return x[horizontal], y[vertical]


def watermark_graph(scale_chain: str, source: WatermarkSource, tail: str = "format=yuv420p") -> str:
    """A ``-filter_complex`` graph: the source's first video stream through ``scale_chain`` (a constant
    chain of the code's, as ``-vf`` would take it), the watermark drawn over the scaled picture, then
    ``tail``; its output is labelled :data:`VIDEO_OUT`. An image is scaled to ``spec.width`` of the
    picture's width (keeping its aspect), its alpha multiplied by the opacity; a text's height is
    ``spec.size`` of the picture's height."""
    spec = source.spec
    end = f",{tail}" if tail else ""
    if source.image_url is not None:
        width = spec.width or 0.0
        x, y = _place(spec.position, spec.margin, "W", "H", "w", "h")
        parts = [
            f"[0:v:0]{scale_chain}[mpr_base]",
            f"[{IMAGE_INPUT}:v:0]"
            + filter_spec("format", {"pix_fmts": "rgba"})
            + ","
            + filter_spec("colorchannelmixer", {"aa": f"{spec.opacity:.4f}"})
            + "[mpr_logo]",
            # scale2ref: iw/ih are the reference's (the scaled picture), main_a the logo's aspect
            "[mpr_logo][mpr_base]"
            + filter_spec(
                "scale2ref",
                {"w": f"max(2,trunc(iw*{width:.4f}/2)*2)", "h": "max(2,trunc(ow/main_a/2)*2)"},
            )
            + "[mpr_mark][mpr_main]",
            "[mpr_main][mpr_mark]" + filter_spec("overlay", {"x": x, "y": y}) + f"{end}[{VIDEO_OUT}]",
        ]
        return ";".join(parts)
    if source.text_file is None:
        raise ValueError("a watermark needs its image input or its text file")
    x, y = _place(spec.position, spec.margin, "w", "h", "text_w", "text_h")
    draw = filter_spec(
        "drawtext",
        {
            "fontfile": WATERMARK_FONT,
            "textfile": str(source.text_file),
            "expansion": "none",
            "fontsize": f"max(8,h*{spec.size or 0.0:.4f})",
            "fontcolor": f"white@{spec.opacity:.4f}",
            "borderw": "1",
            "bordercolor": f"black@{spec.opacity * 0.6:.4f}",
            "x": x,
            "y": y,
        },
    )
    return f"[0:v:0]{scale_chain},{draw}{end}[{VIDEO_OUT}]"
