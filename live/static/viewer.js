// neuropaint live viewer: shows /stream.mjpg full-window and polls /status.json for the overlay:
// band meters and figures; a performer profile's posteriors, controls and target thumbnails
// (status.instrument, /targets/<i>.jpg); a guided calibration's instruction (status.instruction).
// Reconnects by itself when the server goes away and comes back (a new "boot" id, or a poll
// that works again after failing). No dependencies: it must run on a machine with no network.
// /?clean=1 (body class "clean", set by the server): the painting alone, for OBS or a projector.
// /?token=...: a network viewer's token, passed on in the page's own requests (the server also
// sets an HttpOnly cookie, which covers the style sheet and this script).
"use strict";

(() => {
  const POLL_MS = 250;       // Status poll interval.
  const RETRY_MS = 1000;     // Wait before reconnecting a failed stream.
  const IDLE_MS = 2500;      // Hide the cursor and the button after this long without input.
  const STALE_MS = 2000;     // No new frame for this long: say so.
  const BANDS = ["delta", "theta", "alpha", "beta", "gamma"];
  const FIXATION_STATES = new Set(["eyes_open"]);  // A dot to look at, even if not asked for.
  const TOKEN = new URLSearchParams(window.location.search).get("token");

  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const img = $("painting");
  const meters = new Map(BANDS.map((band) => [band, document.querySelector(`.meter[data-band="${band}"]`)]));

  let boot = null;       // The server instance we are streaming from.
  let offline = false;   // The last poll failed.
  let connects = 0;
  let retryTimer = null;

  // A URL of this server with the token, if the page was opened with one.
  const withToken = (url) => (TOKEN === null ? url :
    `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(TOKEN)}`);

  // --- the stream ---------------------------------------------------------------------------

  function connectStream() {
    clearTimeout(retryTimer);
    connects += 1;
    // ahead=1: each frame is followed at once by the next part's headers, so that the browser
    // shows it at once. A new URL forces a new request.
    img.src = withToken(`/stream.mjpg?ahead=1&connect=${connects}`);
  }

  img.addEventListener("load", () => body.classList.add("streaming"));
  img.addEventListener("error", () => {
    body.classList.remove("streaming");  // Clean mode: black, not a broken-image icon.
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connectStream, RETRY_MS);
  });

  // --- the overlay --------------------------------------------------------------------------

  const num = (value) => (typeof value === "number" && Number.isFinite(value) ? value : null);
  const fmt = (value, digits = 0) => (num(value) === null ? "–" : value.toFixed(digits));
  const dict = (value) => (value && typeof value === "object" && !Array.isArray(value) ? value : {});
  const share = (value) => (num(value) === null ? 0 : Math.min(1, Math.max(0, value)));

  function setFill(meter, value) {
    meter.classList.toggle("absent", num(value) === null);
    meter.querySelector(".fill").style.width = `${share(value) * 100}%`;
    meter.title = num(value) === null ? "" : `${(share(value) * 100).toFixed(0)} %`;
  }

  // A meter row like the band meters'; names go in as text, never as markup.
  function makeMeter(name) {
    const meter = document.createElement("div");
    meter.className = "meter";
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name.replace(/_/g, " ");
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.className = "fill";
    bar.append(fill);
    meter.append(label, bar);
    return meter;
  }

  // --- the instrument (a performer profile): posteriors, controls, target thumbnails -------

  let instrumentKey = null;   // The state and control names the meters were built for.
  let stateMeters = new Map();
  let controlMeters = new Map();
  let targetsVersion = null;  // The server's thumbnails the strip was built for.
  let targetCards = new Map();

  function buildMeters(container, names) {
    container.replaceChildren();
    const meters = new Map();
    for (const name of names) {
      const meter = makeMeter(name);
      container.append(meter);
      meters.set(name, meter);
    }
    return meters;
  }

  function renderTargets(viewer) {
    const version = num(viewer.targets_version);
    if (version === targetsVersion) return;
    targetsVersion = version;
    const names = Array.isArray(viewer.targets) ? viewer.targets : [];
    const strip = $("targets");
    strip.replaceChildren();
    targetCards = new Map();
    names.forEach((name, i) => {
      if (typeof name !== "string") return;
      const card = document.createElement("figure");
      card.className = "target";
      const thumb = document.createElement("img");
      thumb.alt = `target painting of ${name}`;
      thumb.src = withToken(`/targets/${i}.jpg?v=${version}`);
      const caption = document.createElement("figcaption");
      caption.textContent = name.replace(/_/g, " ");
      card.append(thumb, caption);
      strip.append(card);
      targetCards.set(name, card);
    });
  }

  function renderInstrument(instrument) {
    const shown = instrument !== null && typeof instrument === "object" && Array.isArray(instrument.states);
    body.classList.toggle("has-instrument", shown);
    if (!shown) return;
    const states = instrument.states.filter((name) => typeof name === "string");
    const posteriors = dict(instrument.posteriors);
    const controls = dict(instrument.controls);
    const controlNames = Object.keys(controls);
    const key = JSON.stringify([states, controlNames]);
    if (key !== instrumentKey) {
      instrumentKey = key;
      stateMeters = buildMeters($("posteriors"), states);
      controlMeters = buildMeters($("controls"), controlNames);
      $("controls-heading").hidden = controlNames.length === 0;
    }
    const committed = typeof instrument.committed === "string" ? instrument.committed : null;
    for (const [name, meter] of stateMeters) {
      setFill(meter, posteriors[name]);
      meter.classList.toggle("committed", name === committed);
    }
    for (const [name, meter] of controlMeters) setFill(meter, controls[name]);
    for (const [name, card] of targetCards) card.classList.toggle("current", name === committed);
  }

  // --- the instruction (a guided calibration) ------------------------------------------------

  function renderInstruction(instruction) {
    const shown = instruction !== null && typeof instruction === "object" &&
      typeof instruction.text === "string" && instruction.text !== "";
    body.classList.toggle("has-instruction", shown);
    body.classList.toggle("fixation", shown && (instruction.fixation === true ||
      FIXATION_STATES.has(instruction.state)));
    if (!shown) return;
    $("instruction-text").textContent = instruction.text;
    const left = num(instruction.remaining_s);
    $("instruction-countdown").textContent = left === null || left <= 0 ? "" : `${Math.ceil(left)} s`;
    const block = num(instruction.block);
    const blocks = num(instruction.blocks);
    $("instruction-block").textContent = block !== null && blocks !== null ? `block ${block} / ${blocks}` : "";
    $("instruction").dataset.state = typeof instruction.state === "string" ? instruction.state : "";
  }

  function render(status, viewer) {
    body.classList.toggle("has-frame", (viewer.frames || 0) > 0);

    $("fps").textContent = `${fmt(status.fps, 1)} fps`;
    const age = status.age_ms && typeof status.age_ms === "object" ? status.age_ms : {};
    // Nothing painted (a calibration): no row of dashes.
    $("figures").hidden = num(status.fps) === null && num(age.p50) === null;
    $("latency").textContent = `latency ${fmt(age.p50)} / ${fmt(age.p95)} ms (p50 / p95)`;

    const bands = dict(status.bands);
    for (const [band, meter] of meters) setFill(meter, bands[band]);
    renderTargets(viewer);
    renderInstrument(status.instrument ?? null);
    renderInstruction(status.instruction ?? null);

    let signal = typeof status.signal === "string" ? status.signal : null;
    let text = signal === null ? "no EEG status" : `signal: ${signal}`;
    if (signal === "artifact" && typeof status.artifact === "string") {
      text += ` (${status.artifact})`;
    }
    if (typeof status.reason === "string" && status.reason) {
      text = status.reason;  // why it calibrates (or has been artifact) so long, in words
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
    $("size").textContent = sizeTruth(status);
  }

  // The size truth: the painting as painted (status.size, [H, W]) and as the browser shows it,
  // in device pixels, so that nobody takes a browser-enlarged 256 px painting for a 1080p one.
  const pixels = ([w, h]) => (w === h ? `${w} px` : `${w}×${h} px`);
  function sizeTruth(status) {
    const size = Array.isArray(status.size) && status.size.length === 2 &&
      num(status.size[0]) !== null && num(status.size[1]) !== null ? status.size : null;
    const natural = [img.naturalWidth, img.naturalHeight];
    const painted = size ? [size[1], size[0]] : (natural[0] > 0 ? natural : null);  // [W, H]
    if (painted === null || !(painted[0] > 0)) return "";
    const box = img.getBoundingClientRect();
    if (!(natural[0] > 0 && natural[1] > 0 && box.width > 0 && box.height > 0)) {
      return `painted ${pixels(painted)}`;
    }
    // object-fit: contain, so one factor for both sides.
    const fit = Math.min(box.width / natural[0], box.height / natural[1]) * (window.devicePixelRatio || 1);
    const shown = natural.map((side) => Math.round(side * fit));
    const scale = shown[0] / painted[0];
    const note = Math.abs(scale - 1) <= 0.02 ? "pixel for pixel" :
      `browser-scaled ×${scale >= 1 ? scale.toFixed(1) : scale.toFixed(2)}`;
    return `painted ${pixels(painted)}, shown ${pixels(shown)} (${note})`;
  }

  function showOffline() {
    body.dataset.signal = "offline";
    $("signal").textContent = "viewer offline, reconnecting…";
  }

  async function poll() {
    try {
      const response = await fetch(withToken("/status.json"), {cache: "no-store"});
      if (!response.ok) throw new Error(`status ${response.status}`);
      const data = await response.json();
      const viewer = data.viewer || {};
      if (offline || (boot !== null && viewer.boot !== boot)) {  // Server is back.
        connectStream();
        targetsVersion = null;  // A restarted server may hold other thumbnails.
      }
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
