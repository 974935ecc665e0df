// One asset: its ffprobe metadata, a poster frame, the source playing in the page, and jobs to start
// from it.

import { api, ApiError, keyPath } from "../api.js";
import { $, h, show, message } from "../dom.js";
import { bytes, duration, when } from "../format.js";
import { subscribe } from "../events.js";

const box = $("#asset");
const assetId = box.dataset.assetId;

function field(label, value) {
  if (value === null || value === undefined || value === "") return null;
  return [h("dt", {}, label), h("dd", {}, String(value))];
}

// Each audio stream as a package would make it a track: its language and title are the file's tags.
function audioTracks(streams) {
  if (!streams || streams.length < 2) return null;
  return streams
    .map((s) => [`#${s.index + 1}`, s.language, s.title ? `“${s.title}”` : null, s.codec, s.channels ? `${s.channels} ch` : null].filter(Boolean).join(" "))
    .join("; ");
}

// Each subtitle stream: its language, title, codec and whether it is marked default or forced.
function subtitleTracks(streams) {
  if (!streams || !streams.length) return null;
  return streams
    .map((s) => [`#${s.index + 1}`, s.language, s.title ? `“${s.title}”` : null, s.codec, s.default ? "default" : null, s.forced ? "forced" : null].filter(Boolean).join(" "))
    .join("; ");
}

function render(a) {
  const i = a.info || {};
  const src = `/media/in/${keyPath(a.key)}`;
  const audioOnly = a.media_type === "audio" || (!i.video_codec && i.audio_codec);
  const player = audioOnly
    ? h("audio", { controls: true, preload: "metadata", src, "aria-label": `Source ${a.key}` })
    : h("video", { controls: true, preload: "metadata", playsinline: true, src, "aria-label": `Source ${a.key}`, id: "source-player" });
  // The poster: the frame at 10% of the way in (a media fragment: the browser seeks there and shows it).
  const posterAt = i.duration ? Math.min(i.duration * 0.1, 10).toFixed(2) : "1";
  const poster = audioOnly ? null : h("video", { preload: "metadata", muted: true, src: `${src}#t=${posterAt}`, "aria-label": `Poster frame of ${a.key} at ${posterAt} s`, class: "poster-frame", tabindex: "-1" });
  const start = (kind) => h("a", { class: "button", href: `/console/jobs/new?kind=${kind}&source=${encodeURIComponent(a.key)}` }, kind === "package" ? "Package (HLS + DASH)" : kind[0].toUpperCase() + kind.slice(1));
  show(
    box,
    h("p", { class: "mono" }, `${a.bucket}/${a.key}`),
    a.removed ? h("p", { class: "notice" }, "This object is no longer in the bucket.") : null,
    h(
      "div",
      { class: "grid" },
      h("section", { class: "card", "aria-labelledby": "player-h" }, h("h2", { id: "player-h" }, "Source"), player),
      poster ? h("section", { class: "card", "aria-labelledby": "poster-h" }, h("h2", { id: "poster-h" }, "Poster"), poster) : null,
    ),
    h("section", { class: "card", "aria-labelledby": "jobs-h" }, h("h2", { id: "jobs-h" }, "Start a job"), h("div", { class: "actions" }, ["transcode", "trim", "thumbnail", "audio", "package"].map(start))),
    h(
      "section",
      { class: "card", "aria-labelledby": "meta-h" },
      h("h2", { id: "meta-h" }, "Metadata (ffprobe)"),
      a.probe_error ? h("p", { class: "error" }, `ffprobe: ${a.probe_error}`) : null,
      h(
        "dl",
        { class: "meta" },
        field("Probe", a.probe_status),
        field("Type", a.media_type),
        field("Container", i.format_name),
        field("Duration", i.duration ? `${duration(i.duration)} (${i.duration} s)` : null),
        field("Bit rate", i.bit_rate ? `${Math.round(i.bit_rate / 1000)} kb/s` : null),
        field("Video", i.video_codec ? `${i.video_codec} ${i.width}×${i.height}${i.fps ? ` @ ${i.fps} fps` : ""}${i.pix_fmt ? `, ${i.pix_fmt}` : ""}` : null),
        field("Audio", i.audio_codec ? `${i.audio_codec}${i.sample_rate ? `, ${i.sample_rate} Hz` : ""}${i.channels ? `, ${i.channels} ch` : ""}` : null),
        field("Audio tracks", audioTracks(i.audio_streams)),
        field("Subtitles", subtitleTracks(i.subtitle_streams)),
        field("Subtitle files", a.sidecars && a.sidecars.length ? a.sidecars.map((f) => `${f.language} ${f.key}`).join("; ") : null),
        field("Streams", i.streams),
        field("Size", bytes(a.size)),
        field("ETag", a.etag),
        field("Registered", when(a.created_at)),
        field("Updated", when(a.updated_at)),
      ),
    ),
  );
}

let source = null;

async function load() {
  try {
    const asset = await api(`/api/assets/${assetId}`);
    render(asset);
    if (asset.probe_status !== "pending") source?.close();
  } catch (e) {
    source?.close();
    if (!(e instanceof ApiError && e.status === 401)) show(box, message(e.status === 404 ? "There is no such asset." : e.detail || e.message, "error"));
  }
}

function main() {
  // While ffprobe has not read it, the catalog announces the asset again once it has.
  source = subscribe({ types: ["asset.registered"], onOpen: load }, (_type, e) => {
    if (e.asset_id === assetId) load();
  });
  load();
}

main();
