"""The console in Chromium against the whole system: signing in, uploading real files through the page,
a job submitted from the page (a trim whose in and out points come from the player) with its progress seen
live and its output played, a failed job's reason, and the API's auth holding for the console's routes."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest

from mpr_api.http.auth import CSRF_HEADER, SESSION_COOKIE
from mpr_devstack.stack import DEV_API_TOKEN
from tests.browser.conftest import PART_BYTES, screenshot
from tests.media import ffmpeg, make_video

pytestmark = pytest.mark.system

# Waits that last seconds (a job's progress, an upload, a video starting) look every 100 ms instead of
# at every animation frame: what they wait for, once true, stays so far longer (a running job for seconds).
POLL_MS = 100
LIVE_PROGRESS = """() => {
  const bar = document.querySelector('#progress progress');
  const status = document.querySelector('#status .badge');
  return bar && status && status.textContent === 'running' && bar.value > 0 && bar.value < 100 ? bar.value : null;
}"""


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("console-media")
    small = make_video(d / "small clip.mp4", seconds=3, size="320x240")
    # a longer one, large enough to go up in parts (about 5.9 MiB: S3's smallest part is 5 MiB), long
    # enough to watch a job's progress move
    large = make_video(d / "long.mp4", seconds=25, size="640x360")
    assert large.stat().st_size > PART_BYTES, "the long video must need a multipart upload"
    return {"small": small, "large": large}


def long_source(api, stack, media) -> str:
    """The long video in the input bucket, registered and probed (uploaded through the page by the
    upload test; put there directly when a test runs alone)."""
    key = "console-upload/long.mp4"
    if not api.get("/api/assets", params={"prefix": key}).json()["items"]:
        stack.s3_client().upload_file(str(media["large"]), stack.bucket_in, key)
        api.post("/api/assets/scan", json={"prefix": key})
    deadline = time.monotonic() + 30
    while api.get("/api/assets", params={"prefix": key}).json()["items"][0]["probe_status"] == "pending":
        assert time.monotonic() < deadline, f"{key} was not probed in 30 s"
        time.sleep(0.1)
    return key


def test_sign_in_refuses_a_wrong_token_next_to_the_field(browser, stack):
    context = browser.new_context(base_url=stack.api_url)
    page = context.new_page()
    page.goto("/console/jobs?status=failed")
    assert "/console/sign-in" in page.url  # no session: the page sends the browser to sign in
    page.get_by_label("API token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    error = page.locator("#token-error")
    assert "not accepted" in error.inner_text()
    token = page.get_by_label("API token")
    assert token.get_attribute("aria-invalid") == "true"
    assert "token-error" in (token.get_attribute("aria-describedby") or "")
    screenshot(page, "sign-in")
    token.fill(DEV_API_TOKEN)
    token.press("Enter")  # the keyboard is enough
    page.wait_for_url(re.compile(r"/console/jobs\?status=failed$"))
    cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/console/sign-in"))
    page.goto("/console/")
    assert "/console/sign-in" in page.url
    context.close()


def test_the_apis_auth_holds_for_the_consoles_routes(stack, signed_in_state):
    cookie = next(c["value"] for c in signed_in_state["cookies"] if c["name"] == SESSION_COOKIE)
    with httpx.Client(base_url=stack.api_url, timeout=30) as anonymous:
        page = anonymous.get("/console/assets", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/console/sign-in")
        for path in ("/api/jobs", "/api/assets", "/api/events"):
            assert anonymous.get(path).status_code == 401, path
        assert anonymous.post("/api/uploads", json={"key": "x.mp4", "size": 1}).status_code == 401
    expires, sid, fingerprint, mac = cookie.split(".")
    forged = f"{int(expires) + 86400}.{sid}.{fingerprint}.{mac}"
    for bad in (forged, f"{int(time.time()) - 10}.{sid}.{fingerprint}.{mac}", "garbage"):
        with httpx.Client(base_url=stack.api_url, cookies={SESSION_COOKIE: bad}, timeout=30) as c:
            assert c.get("/api/jobs").status_code == 401
            assert c.get("/console/jobs", follow_redirects=False).status_code == 303
    with httpx.Client(base_url=stack.api_url, cookies={SESSION_COOKIE: cookie}, timeout=30) as c:
        assert c.get("/api/jobs?limit=1").status_code == 200
        # what a page on another site could send with the cookie: no CSRF header, refused before it runs
        before = c.get("/api/jobs?limit=1").json()["total"]
        r = c.post(
            "/api/jobs",
            content='{"kind": "audio", "source_key": "x.mp4"}',
            headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
        )
        assert r.status_code == 403 and CSRF_HEADER in r.json()["detail"]
        assert c.post("/api/uploads", json={"key": "x.mp4", "size": 1}).status_code == 403
        assert c.get("/api/jobs?limit=1").json()["total"] == before
        csrf = re.search(r'name="mpr-csrf" content="([^"]+)"', c.get("/console/").text)
        assert csrf is not None
        ok = c.post("/api/uploads", json={"key": "../x.mp4", "size": 1}, headers={CSRF_HEADER: csrf.group(1)})
        assert ok.status_code == 400  # past auth and CSRF: the key itself is refused


def test_files_dropped_on_the_upload_page_go_to_storage_and_are_registered(page, api, media):
    page.goto("/console/upload")
    page.get_by_label("Folder (key prefix)").fill("console-upload/")
    page.set_input_files("#files", [str(media["small"]), str(media["large"])])
    rows = page.locator("#uploads li")
    rows.first.wait_for()
    assert rows.count() == 2
    page.wait_for_function(
        "() => document.querySelectorAll('#uploads li[data-state]').length === 2",
        polling=POLL_MS,
        timeout=60_000,
    )
    states = rows.evaluate_all("rows => rows.map(r => [r.dataset.key, r.dataset.state, r.innerText])")
    assert all(state == "registered" for _, state, _ in states), states
    bars = page.locator("#uploads progress").evaluate_all("bars => bars.map(b => b.value === b.max)")
    assert bars == [True, True]
    screenshot(page, "upload")
    for name in ("small clip.mp4", "long.mp4"):
        [asset] = api.get("/api/assets", params={"prefix": f"console-upload/{name}"}).json()["items"]
        assert asset["size"] == media["small" if name.startswith("small") else "large"].stat().st_size
    page.get_by_role("link", name="open the asset").first.click()
    page.wait_for_url(re.compile(r"/console/assets/[0-9a-f]{32}$"))
    # ffprobe's metadata: at once, or as soon as the catalog has probed the new file (a live event)
    page.wait_for_function(
        "() => /h264/.test(document.querySelector('dl.meta')?.innerText)", polling=POLL_MS, timeout=30_000
    )
    assert "Duration" in page.locator("dl.meta").inner_text()
    page.wait_for_function("() => document.querySelector('#source-player').readyState >= 1")
    screenshot(page, "asset")


def test_a_trim_submitted_from_the_page_shows_live_progress_and_plays(page, api, stack, media):
    key = long_source(api, stack, media)
    page.goto(f"/console/jobs/new?kind=trim&source={key}")
    player = page.locator("#source-player")
    page.wait_for_function("() => document.querySelector('#source-player').readyState >= 1")
    # in and out points from the player's position
    player.evaluate("v => { v.currentTime = 0.5 }")
    page.wait_for_function("() => !document.querySelector('#source-player').seeking")
    page.get_by_role("button", name="Set in from player").click()
    # out at 12 s: 11.5 s to re-encode still gives the page many progress events to show (one every 0.2 s)
    player.evaluate("v => { v.currentTime = 12 }")
    page.wait_for_function("() => !document.querySelector('#source-player').seeking")
    page.get_by_role("button", name="Set out from player").click()
    assert float(page.get_by_label("Start (s)").input_value()) == pytest.approx(0.5, abs=0.05)
    assert float(page.get_by_label("End (s)").input_value()) == pytest.approx(12, abs=0.05)
    page.get_by_label("Preset").select_option("h264-480p")  # re-encoded: seconds of work to watch
    screenshot(page, "new-job")
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url(re.compile(r"/console/jobs/[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    # the event stream moves the bar while the job runs: a value strictly between 0 and 100
    seen = page.wait_for_function(LIVE_PROGRESS, polling=POLL_MS, timeout=60_000).json_value()
    assert 0 < seen < 100
    assert page.locator("#live-status").inner_text() == "Live"
    page.wait_for_selector("#output:not([hidden]) #players video", timeout=60_000)
    assert page.locator("#status .badge").inner_text() == "completed"
    job = api.get(f"/api/jobs/{job_id}").json()["job"]
    assert job["kind"] == "trim" and job["start"] == pytest.approx(0.5, abs=0.05)
    assert job["end"] == pytest.approx(12, abs=0.05)
    video = page.get_by_label(re.compile(r"^Output output of job"))
    video.evaluate("v => { v.muted = true; return v.play() }")
    page.wait_for_function(
        "() => document.querySelector('#players video').currentTime > 0", polling=POLL_MS, timeout=30_000
    )
    download = page.get_by_role("link", name="Download output")
    assert download.get_attribute("href") and "X-Amz-Signature" in download.get_attribute("href")
    assert "completed" in page.locator("#timeline").inner_text()
    page.locator("#attempts table").wait_for()
    assert "completed" in page.locator("#attempts").inner_text()
    video.evaluate("v => v.pause()")
    screenshot(page, "job")


def test_a_packages_hls_and_dash_outputs_play_in_the_page(page, api, stack, media):
    key = "console-package/small.mp4"
    stack.s3_client().upload_file(str(media["small"]), stack.bucket_in, key)
    api.post("/api/assets/scan", json={"prefix": key})
    job_id = api.post("/api/jobs", json={"kind": "package", "source_key": key}).json()["job"]["id"]
    page.goto(f"/console/jobs/{job_id}")
    page.wait_for_selector("#output:not([hidden]) #players video", timeout=90_000)
    players = page.locator("#players video")
    labels = players.evaluate_all("videos => videos.map(v => v.getAttribute('aria-label'))")
    assert [label.split(" ")[0] for label in labels] == ["HLS", "DASH"]
    for i in range(players.count()):  # hls.js and dash.js, each through the signed folder link
        players.nth(i).evaluate("v => { v.muted = true; return v.play() }")
        page.wait_for_function(
            f"() => document.querySelectorAll('#players video')[{i}].currentTime > 0",
            polling=POLL_MS,
            timeout=30_000,
        )
        players.nth(i).evaluate("v => v.pause()")
    assert page.locator("#children tr").count() >= 2  # its renditions, each with its progress
    # A package runs in its parts: its attempts are theirs, each named by its part.
    page.wait_for_selector("#attempts table", timeout=30_000)
    attempts = page.locator("#attempts").inner_text()
    assert "No attempt" not in attempts and "completed" in attempts, attempts
    parts = page.locator("#attempts tbody tr td:first-child").all_inner_texts()
    assert parts and all(p.startswith(f"{job_id[:8]}…/") for p in parts), parts

    # The jobs list groups the parts under their package, collapsed, each with an id of its own.
    page.goto("/console/jobs")
    package_row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
    package_row.wait_for()
    children = page.locator(f'#jobs tr[data-parent-id="{job_id}"]')
    assert children.count() >= 2 and not any(children.nth(i).is_visible() for i in range(children.count()))
    package_row.locator("button.children-toggle").click()
    children.first.wait_for(state="visible")
    package_label = package_row.locator("a").first.inner_text()
    labels = [children.nth(i).locator("a").first.inner_text() for i in range(children.count())]
    assert all(label.startswith(f"{job_id[:8]}…/") for label in labels), labels
    assert len({package_label, *labels}) == 1 + len(labels)  # no two alike


def submit_encrypted_package(page, api, stack, media, key: str, label: str) -> None:
    """Uploads the small source under ``key``, submits a package of it from the new-job form with the
    encryption checkbox ``label``; returns once the new package's page is open."""
    stack.s3_client().upload_file(str(media["small"]), stack.bucket_in, key)
    page.goto("/console/jobs/new")
    page.get_by_label("Kind").select_option("package")
    page.get_by_label("Source key").fill(key)
    page.get_by_label(label).check()
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url(re.compile(r"/console/jobs/(?!new$)[^/]+$"))  # the new job's page
    job_id = page.url.rsplit("/", 1)[1]
    assert api.get(f"/api/jobs/{job_id}").json()["job"]["kind"] == "package"


def test_an_encrypted_package_submitted_from_the_page_plays_with_its_key(page, api, stack, media):
    """The form asks for HLS AES-128; the job page plays the package with hls.js, which fetches the
    key through the token the signed playlists carry (and no DASH player: it has no MPD)."""
    keys_fetched: list[int] = []
    page.on("response", lambda r: keys_fetched.append(r.status) if "/media/keys/" in r.url else None)
    submit_encrypted_package(
        page, api, stack, media, "console-encrypted/small.mp4", "Encrypted, HLS AES-128 (package)"
    )
    page.wait_for_selector("#output:not([hidden]) #players video", timeout=90_000)
    players = page.locator("#players video")
    assert players.count() == 1 and players.first.get_attribute("aria-label").startswith("HLS")
    players.first.evaluate("v => { v.muted = true; return v.play() }")
    page.wait_for_function(
        "() => document.querySelector('#players video').currentTime > 0", polling=POLL_MS, timeout=30_000
    )
    players.first.evaluate("v => v.pause()")
    assert keys_fetched and set(keys_fetched) == {200}, keys_fetched


def test_a_cenc_package_submitted_from_the_page_plays_with_its_clearkey_licence(page, api, stack, media):
    """The form asks for CMAF CENC; the job page plays the package with dash.js (the MPD's licence URL)
    and hls.js (the master's session data), each through Chromium's ClearKey CDM and the licence the
    signed manifests name with a playback token."""
    licences: list[int] = []
    page.on("response", lambda r: licences.append(r.status) if "/media/licenses/" in r.url else None)
    label = "Encrypted, CMAF CENC with a ClearKey licence (package)"
    submit_encrypted_package(page, api, stack, media, "console-cenc/small.mp4", label)
    page.wait_for_selector("#output:not([hidden]) #players video", timeout=90_000)
    players = page.locator("#players video")
    labels = players.evaluate_all("videos => videos.map(v => v.getAttribute('aria-label'))")
    assert [label.split(" ")[0] for label in labels] == ["HLS", "DASH"]
    for i in range(players.count()):
        players.nth(i).evaluate("v => { v.muted = true; return v.play() }")
        page.wait_for_function(
            f"() => document.querySelectorAll('#players video')[{i}].currentTime > 0",
            polling=POLL_MS,
            timeout=30_000,
        )
        players.nth(i).evaluate("v => v.pause()")
        # through the ClearKey CDM: encrypted media would wait for a key, not play, without one
        assert players.nth(i).evaluate("v => v.mediaKeys !== null"), labels[i]
    assert len(licences) >= 2 and set(licences) == {200}, licences  # a licence for each player


def test_a_chunked_package_plays_in_the_page_before_it_completes(page, api, stack, media, tmp_path):
    # 48 s of a small picture in 8 s chunks: six chunk jobs, at most four of them started (two
    # transcoders, each on to its next) when the first one makes it playable. That moment its queue
    # class is paused, so the rest wait: it cannot complete while the page plays it. Picture only: the
    # sound is one job over the whole source, and a package plays once its sound is up too, which here
    # could be as late as the last chunk.
    key = "console-chunked/long.mp4"
    source = tmp_path / "long-small.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=5:duration=48",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "5",
        str(source),
    )
    stack.s3_client().upload_file(str(source), stack.bucket_in, key)
    job_id = uuid.uuid4().hex
    body = {"kind": "package", "source_key": key, "chunk_seconds": 8, "priority": "bulk", "job_id": job_id}
    with api.stream(
        "GET", "/api/events", params={"job_id": job_id, "types": "job.playable"}, timeout=90
    ) as r:
        assert api.post("/api/jobs", json=body).status_code == 202
        page.goto(f"/console/jobs/{job_id}")
        deadline = time.monotonic() + 90
        for line in r.iter_lines():  # a keep-alive comment every 15 s at the least
            assert time.monotonic() < deadline, api.get(f"/api/jobs/{job_id}").json()["job"]
            if line == "event: job.playable":
                break
        assert api.post("/api/queues/bulk/pause").status_code == 200
    try:
        job = api.get(f"/api/jobs/{job_id}").json()["job"]
        assert job["status"] == "running", job  # the pause came in time: chunks are left to run
        page.wait_for_selector("#output:not([hidden]) #players video", timeout=30_000)
        page.wait_for_selector("#encoding-note", state="visible", timeout=10_000)
        page.wait_for_function(  # hls.js plays the EVENT playlist as far as it is encoded
            "() => document.querySelector('#players video').currentTime > 0", polling=POLL_MS, timeout=30_000
        )
        job = api.get(f"/api/jobs/{job_id}").json()["job"]
        assert job["status"] == "running" and job["progress"] < 100, job
        assert page.locator("#status .badge").inner_text() == "running"
        assert "playable" in page.locator("#timeline").inner_text()
    finally:
        api.post("/api/queues/bulk/resume")
    # and on to its completion: the same page shows the finished package
    page.wait_for_selector("#status .badge.completed", timeout=120_000)
    page.wait_for_selector("#output:not([hidden]) #players video", timeout=30_000)
    page.wait_for_selector("#download", timeout=30_000)
    assert not page.locator("#encoding-note").count()


def test_bad_input_on_the_new_job_form_is_shown_next_to_its_field(rendered_page, api, stack, media):
    page = rendered_page
    key = long_source(api, stack, media)
    page.goto("/console/jobs/new")
    page.get_by_label("Kind").select_option("trim")
    page.get_by_role("button", name="Submit job").click()  # checked in the page: no source, no in/out
    assert "source" in page.locator("#source_key-error").inner_text().lower()
    assert "trim needs" in page.locator("#start-error").inner_text()
    assert page.get_by_label("Source key").get_attribute("aria-invalid") == "true"
    assert page.evaluate("() => document.activeElement.id") == "source_key"
    before = api.get("/api/jobs?limit=1").json()["total"]
    page.get_by_label("Source key").fill(key)
    page.get_by_label("Kind").select_option("transcode")
    page.get_by_label("Output key (optional)").fill("console/out.txt")
    page.get_by_role("button", name="Submit job").click()  # checked by the API: its reason, by the field
    error = page.locator("#output_key-error")
    error.wait_for()
    assert "output_key must end with .mp4" in error.inner_text()
    assert page.get_by_label("Output key (optional)").get_attribute("aria-invalid") == "true"
    assert page.locator("#source_key-error").is_hidden()
    assert api.get("/api/jobs?limit=1").json()["total"] == before


def test_the_pages_helpers_read_api_errors_and_numbers_right(rendered_page):
    page = rendered_page
    page.goto("/console/upload")  # its module is loaded already: importing it again runs nothing
    result = page.evaluate(
        """async () => {
          const { api } = await import('/console/static/js/api.js');
          const f = await import('/console/static/js/format.js');
          const { folderPrefix } = await import('/console/static/js/pages/upload.js');
          // the field each refusal names (none of these requests is accepted)
          const field = (path, body) => api(path, { method: body ? "POST" : "GET", body }).then(
            () => "accepted",
            (e) => e.field,
          );
          return {
            fields: await Promise.all([
              field("/api/jobs", { kind: "transcode", source_key: "a.mp4", start: -1 }),
              field("/api/jobs", { kind: "trim", source_key: "a.mp4", start: 5, end: 2 }),
              field("/api/jobs", { kind: "transcode", source_key: "a.mp4", output_key: "a.txt" }),
              field("/api/uploads", { key: "notes.txt", size: 1 }),
              field("/api/jobs/no-such-job"),
            ]),
            bytes: [f.bytes(0), f.bytes(1500), f.bytes(3_220_632)],
            durations: [f.duration(3), f.duration(75.4), f.duration(3725)],
            etas: [f.eta(5.4), f.eta(125), f.eta(7260), f.eta(null)],
            estimate: f.estimate(25, 100, 110),
            folders: [folderPrefix(" /a//b "), folderPrefix("a/"), folderPrefix("")],
          };
        }"""
    )
    assert result["fields"] == ["start", "end", "output_key", "key", None]
    assert result["bytes"] == ["0 B", "1.5 KB", "3.2 MB"]
    assert result["durations"] == ["0:03.0", "1:15", "1:02:05"]
    assert result["etas"] == ["5 s", "2 min 5 s", "2 h 1 min", ""]
    assert result["estimate"] == pytest.approx(30)  # a quarter done in 10 s: 30 s to go
    assert result["folders"] == ["a/b/", "a/", ""]


def test_a_failed_jobs_reason_is_shown(rendered_page, api):
    page = rendered_page
    r = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": "console/missing.mp4", "start": 1})
    job_id = r.json()["job"]["id"]
    page.goto(f"/console/jobs/{job_id}")
    failure = page.locator("#failure")
    failure.wait_for(timeout=60_000)
    job = api.get(f"/api/jobs/{job_id}").json()["job"]
    assert job["status"] == "failed"
    assert page.locator("#failure-reason").inner_text() == job["failure_reason"]
    assert page.locator("#failure-error").inner_text() == job["error"]
    assert page.get_by_role("button", name="Retry job").is_visible()
    screenshot(page, "job-failed")
    page.goto("/console/")
    row = page.locator("#failures tr", has_text=job_id[:12])
    row.wait_for()
    assert job["failure_reason"] in row.inner_text()


def test_the_dashboard_follows_running_jobs_and_a_job_is_cancelled_from_its_page(
    rendered_page, api, stack, media
):
    page = rendered_page
    key = long_source(api, stack, media)
    page.goto("/console/")
    page.wait_for_selector("#running:not([aria-busy])")
    page.wait_for_selector("#live-status.on")
    r = api.post("/api/jobs", json={"kind": "transcode", "source_key": key, "preset": "vp9-720p"})
    job_id = r.json()["job"]["id"]
    row = page.locator(f'#running tr[data-job-id="{job_id}"]')
    row.wait_for(timeout=30_000)
    page.wait_for_function(
        f"""() => {{
          const tr = document.querySelector('#running tr[data-job-id="{job_id}"]');
          return tr && tr.querySelector('progress').value > 0 && tr.querySelector('.worker').textContent;
        }}""",
        polling=POLL_MS,
        timeout=30_000,
    )
    worker = row.locator(".worker").inner_text()
    assert worker.startswith("transcoder-")
    workers = page.locator("#workers").inner_text()
    assert worker in workers and job_id[:8] in workers  # each worker with the job it runs
    depth = page.locator("#queues").inner_text()
    assert "urgent" in depth and "normal" in depth and "bulk" in depth
    screenshot(page, "dashboard")
    page.goto(f"/console/jobs/{job_id}")
    page.get_by_role("button", name="Cancel job").click()
    page.wait_for_selector("#status .badge.cancelled", timeout=30_000)
    assert api.get(f"/api/jobs/{job_id}").json()["job"]["status"] == "cancelled"
    page.goto("/console/")
    page.wait_for_selector("#running:not([aria-busy])")
    page.locator(f'#running tr[data-job-id="{job_id}"]').wait_for(state="detached", timeout=10_000)


def test_templates_rules_and_webhooks_are_managed_from_the_console(rendered_page, api, stack, media):
    page = rendered_page
    long_source(api, stack, media)
    page.goto("/console/templates")
    form = page.locator("#admin-form")
    form.wait_for()
    page.get_by_label("Name").fill("console-480p")
    definition = page.get_by_label("Definition (JSON)")
    definition.fill('{"kind": "transcode", "preset": ')
    page.get_by_role("button", name="Save").click()
    assert "Not valid JSON" in page.locator("#definition-error").inner_text()
    assert definition.get_attribute("aria-invalid") == "true"
    definition.fill('{"kind": "transcode", "preset": "no-such-preset"}')
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector("#definition-error:not([hidden])")
    assert "preset" in page.locator("#definition-error").inner_text()  # the API's reason, by the field
    definition.fill('{"kind": "transcode", "preset": "h264-480p", "output_key": "web/{path}.mp4"}')
    page.get_by_role("button", name="Save").click()
    page.locator("#admin tr", has_text="console-480p").wait_for()
    screenshot(page, "templates")
    page.goto("/console/rules")
    page.locator("#admin-form").wait_for()
    page.get_by_label("Definition (JSON)").fill(
        '{"template": "console-480p", "prefix": "console-upload/", "enabled": false}'
    )
    page.get_by_role("button", name="Dry run").click()
    result = page.locator("#admin-result")
    result.wait_for()
    assert '"matched"' in result.inner_text() and "console-upload/long.mp4" in result.inner_text()
    page.get_by_role("button", name="Save").click()
    page.locator("#admin tr", has_text="console-480p").wait_for()
    screenshot(page, "rules")
    page.goto("/console/jobs/new")
    page.locator("#template-field:not([hidden])").wait_for()
    assert "console-480p" in page.get_by_label("Template").inner_text()
    page.goto("/console/webhooks")
    page.locator("#admin-form").wait_for()
    hook = page.get_by_label("Definition (JSON)")
    hook.fill('{"url": "ftp://127.0.0.1/mpr", "types": ["job.failed"]}')
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector("#definition-error:not([hidden])")  # the API's refusal, by the field
    assert "url" in page.locator("#definition-error").inner_text().lower()
    hook.fill('{"url": "http://127.0.0.1:9/mpr-hook", "types": ["job.completed"], "description": "console"}')
    page.get_by_role("button", name="Save").click()
    page.locator("#admin tr", has_text="127.0.0.1:9/mpr-hook").wait_for()
    assert '"secret"' in page.locator("#admin-result").inner_text()  # shown once, kept on screen
    screenshot(page, "webhooks")


@pytest.mark.parametrize(
    ("path", "name", "ready"),
    [
        ("/console/", None, "#running:not([aria-busy])"),
        ("/console/jobs", "jobs", "#jobs:not([aria-busy])"),
        ("/console/assets", "assets", "#assets:not([aria-busy])"),
        ("/console/templates", None, "#admin:not([aria-busy])"),
        ("/console/rules", None, "#admin:not([aria-busy])"),
        ("/console/webhooks", None, "#admin:not([aria-busy])"),
        ("/console/dead-letters", "dead-letters", "#admin:not([aria-busy])"),
        ("/console/upload", None, "#dropzone"),
        ("/console/jobs/new", None, "#preset-help:not(:empty)"),
    ],
)
def test_every_page_renders_and_fits_a_phone(rendered_page, path, name, ready):
    page = rendered_page
    page.goto(path)
    page.wait_for_selector(ready)
    assert not page.locator("#main .error:visible").count(), page.locator(
        "#main .error:visible"
    ).all_inner_texts()
    if name:  # the others are taken where they show more
        screenshot(page, name)
    page.set_viewport_size({"width": 375, "height": 800})
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{path} is wider than a phone's screen by {overflow}px"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
