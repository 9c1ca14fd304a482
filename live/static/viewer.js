// neuropaint live viewer: shows /stream.mjpg full-window and polls /status.json for the overlay.
// Reconnects by itself when the server goes away and comes back (a new "boot" id, or a poll
// that works again after failing). No dependencies: it must run on a machine with no network.
"use strict";

(() => {
  const POLL_MS = 250;       // Status poll interval.
  const RETRY_MS = 1000;     // Wait before reconnecting a failed stream.
  const IDLE_MS = 2500;      // Hide the cursor and the button after this long without input.
  const STALE_MS = 2000;     // No new frame for this long: say so.
  const BANDS = ["delta", "theta", "alpha", "beta", "gamma"];

  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const img = $("painting");
  const meters = new Map(BANDS.map((band) => [band, document.querySelector(`.meter[data-band="${band}"]`)]));

  let boot = null;       // The server instance we are streaming from.
  let offline = false;   // The last poll failed.
  let connects = 0;
  let retryTimer = null;

  // --- the stream ---------------------------------------------------------------------------

  function connectStream() {
    clearTimeout(retryTimer);
    connects += 1;
    img.src = `/stream.mjpg?connect=${connects}`;  // A new URL forces a new request.
  }

  img.addEventListener("error", () => {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connectStream, RETRY_MS);
  });

  // --- the overlay --------------------------------------------------------------------------

  const num = (value) => (typeof value === "number" && Number.isFinite(value) ? value : null);
  const fmt = (value, digits = 0) => (num(value) === null ? "–" : value.toFixed(digits));

  function render(status, viewer) {
    body.classList.toggle("has-frame", (viewer.frames || 0) > 0);

    $("fps").textContent = `${fmt(status.fps, 1)} fps`;
    const age = status.age_ms && typeof status.age_ms === "object" ? status.age_ms : {};
    $("latency").textContent = `latency ${fmt(age.p50)} / ${fmt(age.p95)} ms (p50 / p95)`;

    const bands = status.bands && typeof status.bands === "object" ? status.bands : {};
    for (const [band, meter] of meters) {
      const value = num(bands[band]);
      meter.classList.toggle("absent", value === null);
      const fill = meter.querySelector(".fill");
      fill.style.width = `${value === null ? 0 : Math.min(1, Math.max(0, value)) * 100}%`;
    }

    let signal = typeof status.signal === "string" ? status.signal : null;
    let text = signal === null ? "no EEG status" : `signal: ${signal}`;
    if (signal === "artifact" && typeof status.artifact === "string") {
      text += ` (${status.artifact})`;
    }
    const since = num(viewer.since_ms);
    if (since !== null && since > STALE_MS) {
      signal = "stalled";
      text = `no new painting for ${(since / 1000).toFixed(0)} s`;
    } else if (!viewer.frames) {
      signal = "waiting";
      text = "waiting for the first painting";
    }
    body.dataset.signal = signal || "none";
    $("signal").textContent = text;
    $("state").textContent = typeof status.state === "string" ? status.state : "";

    $("frame").textContent = num(status.frame) === null ? "" : `frame ${status.frame}`;
    const size = Array.isArray(status.size) && status.size.length === 2 ? status.size : null;
    $("size").textContent = size ? `· ${size[1]}×${size[0]} px` : "";
  }

  function showOffline() {
    body.dataset.signal = "offline";
    $("signal").textContent = "viewer offline, reconnecting…";
  }

  async function poll() {
    try {
      const response = await fetch("/status.json", {cache: "no-store"});
      if (!response.ok) throw new Error(`status ${response.status}`);
      const data = await response.json();
      const viewer = data.viewer || {};
      if (offline || (boot !== null && viewer.boot !== boot)) connectStream();  // Server is back.
      boot = viewer.boot;
      offline = false;
      render(data.status || {}, viewer);
    } catch (err) {
      offline = true;
      showOffline();
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  // --- full screen, hiding, idle cursor -----------------------------------------------------

  function toggleFullscreen() {
    if (document.fullscreenElement) {
      document.exitFullscreen().catch(() => {});
    } else if (document.documentElement.requestFullscreen) {
      document.documentElement.requestFullscreen().catch(() => {});
    }
  }

  function toggleOverlay() {
    const hidden = body.classList.toggle("overlay-hidden");
    try { localStorage.setItem("neuropaint.overlayHidden", hidden ? "1" : "0"); } catch (err) { /* private mode */ }
  }

  let idleTimer = null;
  function wake() {
    body.classList.remove("idle");
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => body.classList.add("idle"), IDLE_MS);
  }

  $("fullscreen").addEventListener("click", toggleFullscreen);
  img.addEventListener("dblclick", toggleFullscreen);
  document.addEventListener("fullscreenchange", () => {
    $("fullscreen").textContent = document.fullscreenElement ? "exit full screen" : "full screen";
  });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    if (key === "f") toggleFullscreen();
    else if (key === "h") toggleOverlay();
  });
  for (const name of ["mousemove", "pointerdown", "keydown", "touchstart"]) {
    document.addEventListener(name, wake, {passive: true});
  }

  try {
    if (localStorage.getItem("neuropaint.overlayHidden") === "1") body.classList.add("overlay-hidden");
  } catch (err) { /* private mode */ }
  wake();
  connectStream();
  poll();
})();
