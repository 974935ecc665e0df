// Plays a link in a <video>: MP4 and other files natively, HLS with hls.js (natively where the browser
// can), DASH with dash.js. Both libraries are vendored (static/vendor) and loaded only when needed.

import { h } from "./dom.js";

function pathOf(url) {
  return new URL(url, location.href).pathname.toLowerCase();
}

export function kindOf(url) {
  const path = pathOf(url);
  if (path.endsWith(".m3u8")) return "hls";
  if (path.endsWith(".mpd")) return "dash";
  if (/\.(jpe?g|png|webp)$/.test(path)) return "image";
  if (/\.(mp3|m4a|aac|flac|wav|ogg|opus)$/.test(path)) return "audio";
  return "video";
}

/** Attach ``url`` to ``video``; returns the library's player (or null) so that it can be destroyed. */
export async function attach(video, url) {
  const kind = kindOf(url);
  if (kind === "hls") {
    // hls.js wherever Media Source Extensions exist (the same player everywhere); the browser's own
    // HLS (Safari, iOS) otherwise.
    const { default: Hls } = await import("../vendor/hls.js/hls.esm.min.js");
    if (Hls.isSupported()) {
      const hls = new Hls();
      hls.loadSource(url);
      hls.attachMedia(video);
      return hls;
    }
    video.src = url;
    return null;
  }
  if (kind === "dash") {
    const { MediaPlayer } = await import("../vendor/dashjs/dash.esm.min.js");
    const player = MediaPlayer().create();
    player.initialize(video, url, false);
    return player;
  }
  video.src = url;
  return null;
}

/** A labelled player for ``url`` (a <video>, an <audio> or an <img>). */
export function mediaElement(url, label) {
  const kind = kindOf(url);
  if (kind === "image") return h("img", { src: url, alt: label, class: "poster" });
  const el = h(kind === "audio" ? "audio" : "video", {
    controls: true,
    preload: "metadata",
    playsinline: true,
    "aria-label": label,
  });
  attach(el, url);
  return el;
}
