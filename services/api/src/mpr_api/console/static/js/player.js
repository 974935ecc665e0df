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
  if (/\.(jpe?g|png|webp|gif)$/.test(path)) return "image";
  if (/\.(mp3|m4a|aac|flac|wav|ogg|opus)$/.test(path)) return "audio";
  return "video";
}

/** A package's audio tracks (its master playlist's EXT-X-MEDIA TYPE=AUDIO), when it has two or more:
 * a <select> after the video that switches hls.js's track. The names come from the source's tags:
 * written as text, never as markup. */
function audioMenu(video, hls, Events) {
  hls.on(Events.AUDIO_TRACKS_UPDATED, () => {
    video.mprAudioMenu?.remove();
    video.mprAudioMenu = null;
    const tracks = hls.audioTracks;
    if (tracks.length < 2 || !video.parentNode) return;
    const label = (t) => (t.lang && t.lang !== t.name ? `${t.name} (${t.lang})` : t.name);
    const select = h(
      "select",
      { class: "audio-tracks", "aria-label": "Audio track", onchange: () => (hls.audioTrack = Number(select.value)) },
      tracks.map((t, i) => h("option", { value: String(i) }, label(t))),
    );
    select.value = String(Math.max(0, hls.audioTrack));
    video.mprAudioMenu = select;
    video.after(select);
  });
  hls.on(Events.AUDIO_TRACK_SWITCHED, (_event, data) => {
    if (video.mprAudioMenu) video.mprAudioMenu.value = String(data.id);
  });
}

/** A package's subtitle tracks (its master playlist's EXT-X-MEDIA TYPE=SUBTITLES): a <select> after the
 * video, "Off" first, that switches hls.js's subtitle track. Names are the source's tags: text only. */
function subtitleMenu(video, hls, Events) {
  hls.on(Events.SUBTITLE_TRACKS_UPDATED, () => {
    video.mprSubtitleMenu?.remove();
    video.mprSubtitleMenu = null;
    const tracks = hls.subtitleTracks;
    if (!tracks.length || !video.parentNode) return;
    const label = (t) => (t.lang && t.lang !== t.name ? `${t.name} (${t.lang})` : t.name);
    const select = h(
      "select",
      { class: "subtitle-tracks", "aria-label": "Subtitles", onchange: () => (hls.subtitleTrack = Number(select.value)) },
      [h("option", { value: "-1" }, "Subtitles off"), ...tracks.map((t, i) => h("option", { value: String(i) }, label(t)))],
    );
    select.value = String(hls.subtitleTrack);
    video.mprSubtitleMenu = select;
    (video.mprAudioMenu || video).after(select);
  });
  hls.on(Events.SUBTITLE_TRACK_SWITCH, (_event, data) => {
    if (video.mprSubtitleMenu) video.mprSubtitleMenu.value = String(data.id);
  });
}

// Where a cenc package's master playlist names its ClearKey licence (with the playback token of the
// link it was served under): mpr_common.content_keys.LICENSE_DATA_ID. HLS has no tag for a licence
// server, and hls.js takes it from its config only: it is set there once the master is read, before any
// key is asked for. A DASH package's MPD names it in dashif:Laurl, which dash.js reads itself.
const LICENSE_DATA_ID = "com.mpr.clearkey-license";
const CLEARKEY = "org.w3.clearkey";

function clearKeyLicence(hls, Events) {
  hls.on(Events.MANIFEST_LOADED, (_event, data) => {
    const url = data.sessionData?.[LICENSE_DATA_ID]?.VALUE;
    if (url) hls.config.drmSystems[CLEARKEY].licenseUrl = url;
  });
}

/** Attach ``url`` to ``video``; returns the library's player (or null) so that it can be destroyed. */
export async function attach(video, url) {
  const kind = kindOf(url);
  if (kind === "hls") {
    // hls.js wherever Media Source Extensions exist (the same player everywhere); the browser's own
    // HLS (Safari, iOS) otherwise.
    const { default: Hls } = await import("../vendor/hls.js/hls.esm.min.js");
    if (Hls.isSupported()) {
      // From the title's start: a package playable while it encodes has an EVENT playlist (no
      // ENDLIST yet), which hls.js would otherwise join at its live edge.
      // EME for a cenc package's ClearKey licence (clear and AES-128 packages never ask for it)
      const hls = new Hls({ startPosition: 0, emeEnabled: true, drmSystems: { [CLEARKEY]: { licenseUrl: "" } } });
      clearKeyLicence(hls, Hls.Events);
      audioMenu(video, hls, Hls.Events);
      subtitleMenu(video, hls, Hls.Events);
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

/** A labelled player for ``url`` (a <video>, an <audio> or an <img>). ``autoplay``: it starts by
 * itself, muted (the only way browsers let a page start playing on its own). */
export function mediaElement(url, label, { autoplay = false } = {}) {
  const kind = kindOf(url);
  if (kind === "image") return h("img", { src: url, alt: label, class: "poster" });
  const el = h(kind === "audio" ? "audio" : "video", {
    controls: true,
    preload: autoplay ? "auto" : "metadata",
    playsinline: true,
    autoplay,
    muted: autoplay,
    "aria-label": label,
  });
  el.mprPlayer = attach(el, url);
  return el;
}

/** Stop what ``mediaElement`` started: its library stops loading (it reloads a growing playlist until
 * then) and lets the element go. */
export async function release(el) {
  const player = await el?.mprPlayer;
  el?.mprAudioMenu?.remove();
  el?.mprSubtitleMenu?.remove();
  if (player && typeof player.destroy === "function") player.destroy(); // hls.js
  else if (player && typeof player.reset === "function") player.reset(); // dash.js
}
