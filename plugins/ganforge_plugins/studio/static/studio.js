// ganforge studio: the page keeps this tab's state and sends it whole with every request; the server
// renders with the same code as the command line. Plain JavaScript, no framework, no network but ours.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

const studio = {
  info: null,
  state: { seed: 0, latent: "", class_index: null, psi: 1.0, mixOn: false, mixSeed: 1, mixLayers: ["coarse"], edits: {} },
  lastSlider: null,
  ends: { a: null, b: null },
  renders: 0,          // finished renders (tests wait on it)
  latencies: [],       // ms from a slider's input event to the new image on the page
  last: null,          // the last render's response
  onRender: null,      // called with each render's response (a benchmark's hook)
};
window.studio = studio;

function showError(text) {
  const box = $("#message");
  box.textContent = text;
  box.hidden = !text;
}

async function api(path, body, { raw = false, method } = {}) {
  const options = body === undefined ? { method: method || "GET" } : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return raw ? response : response.json();
}

function stateForServer(s = studio.state) {
  const edits = Object.entries(s.edits).filter(([, a]) => a !== 0).map(([slider, alpha]) => ({ slider, alpha }));
  return {
    seed: s.seed, latent: s.latent, class_index: s.class_index, psi: s.psi,
    mix: s.mixOn ? { seed: s.mixSeed, layers: s.mixLayers } : null, edits,
  };
}

// -- the current image: one request at a time, the newest state sent when the previous one returns

let inFlight = false, pending = false, pendingStart = null;

function requestRender(startedAt = performance.now()) {
  if (inFlight) { pending = true; pendingStart = pendingStart ?? startedAt; return; }
  inFlight = true;
  const sent = stateForServer();
  api("/api/render", { state: sent }).then((out) => new Promise((resolve) => {
    const img = $("#current");
    img.onload = () => resolve(out);
    img.onerror = () => resolve(out);
    img.src = out.image;
  })).then((out) => {
    studio.last = { ...out, state: sent };
    studio.latencies.push(performance.now() - startedAt);
    studio.renders += 1;
    if (studio.onRender) studio.onRender(out);
    showError("");
    const source = sent.latent ? `inverted latent ${sent.latent}` : `seed ${sent.seed}`;
    $("#caption").textContent = `${source} · rendered from ${out.space} · ${out.ms} ms on the server`;
    $("#notes").replaceChildren(...out.notes.map((n) => Object.assign(document.createElement("li"), { textContent: n })));
    showScores(out.scores);
  }).catch((e) => showError(e.message)).finally(() => {
    inFlight = false;
    if (pending) { const t = pendingStart; pending = false; pendingStart = null; requestRender(t); }
  });
}

function showScores(scores) {
  const body = $("#scores tbody");
  const rows = [];
  const byScorer = {};
  for (const s of scores) (byScorer[s.scorer] = byScorer[s.scorer] || []).push(s);
  for (const [scorer, list] of Object.entries(byScorer)) {
    if (list.length > 1) {  // a classifier: its most likely class and that class's probability
      const top = list.reduce((a, b) => (b.value > a.value ? b : a));
      rows.push(scoreRow(`${scorer}`, `${top.attribute} (${top.value.toFixed(3)})`, top.value, scorer));
    } else {
      rows.push(scoreRow(list[0].attribute, list[0].value.toFixed(4), Math.abs(list[0].value), list[0].attribute));
    }
  }
  body.replaceChildren(...rows);
}

function scoreRow(name, text, fraction, key) {
  const tr = document.createElement("tr");
  tr.dataset.attribute = key;
  const bar = `<div class="bar" style="width:${Math.max(0, Math.min(1, fraction)) * 100}%"></div>`;
  tr.innerHTML = `<td>${name}</td><td class="value">${text}</td><td style="width:40%">${bar}</td>`;
  return tr;
}

function setSource({ seed, latent = "" }) {
  if (seed !== undefined) { studio.state.seed = seed; $("#seed").value = seed; }
  studio.state.latent = latent;
  requestRender();
}

// -- explore

async function loadGrid() {
  const s = studio.state;
  try {
    const out = await api("/api/grid", { seed: s.seed, count: 16, class_index: s.class_index, psi: s.psi });
    $("#grid").replaceChildren(...out.images.map(({ seed, image }) => {
      const b = document.createElement("button");
      b.className = "thumb" + (seed === s.seed && !s.latent ? " selected" : "");
      b.dataset.seed = seed;
      b.innerHTML = `<img alt="seed ${seed}" src="${image}"><span>${seed}</span>`;
      b.onclick = () => {
        $$(".thumb").forEach((t) => t.classList.remove("selected"));
        b.classList.add("selected");
        setSource({ seed });
      };
      return b;
    }));
  } catch (e) { showError(e.message); }
}

function mixLayersFromPage() {
  return $$("#mixing input[type=checkbox][value]").filter((c) => c.checked).map((c) => c.value);
}

// -- edit

function directionGroups(directions) {
  const groups = {};
  for (const d of directions) (groups[d.editor] = groups[d.editor] || []).push(d);
  return groups;
}

function renderDirections(directions) {
  const box = $("#directions");
  const open = new Set($$("details", box).filter((d) => d.open).map((d) => d.dataset.editor));
  box.replaceChildren(...Object.entries(directionGroups(directions)).map(([editor, list]) => {
    const details = document.createElement("details");
    details.dataset.editor = editor;
    details.open = open.has(editor) || list.some((d) => d.fitted);
    details.innerHTML = `<summary>${editor} <span class="hint">(${list.length})</span></summary>`;
    for (const d of list) details.append(directionRow(d));
    return details;
  }));
}

function directionRow(d) {
  const row = document.createElement("div");
  row.className = "direction";
  row.dataset.key = d.key;
  const name = document.createElement("div");
  name.textContent = d.label;
  const right = document.createElement("div");
  if (d.fitted) {
    for (const s of d.sliders) right.append(sliderElement(s));
  } else {
    const button = document.createElement("button");
    button.dataset.fit = d.key;
    button.textContent = d.cached ? "load (saved beside the run)" : "fit";
    button.onclick = () => fit(d.key, right);
    right.append(button);
  }
  row.append(name, right);
  return row;
}

function sliderElement(s) {
  const wrap = document.createElement("div");
  wrap.className = "slider";
  const label = document.createElement("label");
  label.textContent = s.variance != null ? `${s.label} (${(100 * s.variance).toFixed(1)}% var., ${s.space})`
    : `in ${s.space}`;
  const input = Object.assign(document.createElement("input"), { type: "range", min: -3, max: 3, step: 0.1 });
  input.dataset.slider = s.id;
  input.value = studio.state.edits[s.id] ?? 0;
  const out = document.createElement("output");
  out.textContent = Number(input.value).toFixed(1);
  input.addEventListener("input", () => {
    const t = performance.now();
    studio.state.edits[s.id] = Number(input.value);
    studio.lastSlider = s.id;
    out.textContent = Number(input.value).toFixed(1);
    requestRender(t);
  });
  wrap.append(label, input, out);
  return wrap;
}

async function refreshDirections() {
  const q = studio.state.class_index == null ? "" : `?class_index=${studio.state.class_index}`;
  try { renderDirections((await api(`/api/directions${q}`)).directions); } catch (e) { showError(e.message); }
}

async function follow(job, onProgress) {
  for (;;) {
    const view = await api(`/api/jobs/${job.id}`);
    onProgress(view);
    if (view.status === "done") return view.result;
    if (view.status === "failed") throw new Error(view.message);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function fit(key, box) {
  const bar = document.createElement("progress");
  const status = Object.assign(document.createElement("span"), { className: "status" });
  box.replaceChildren(bar, status);
  try {
    const { job } = await api("/api/fit", { key, class_index: studio.state.class_index });
    status.textContent = job.message;
    await follow(job, (view) => {
      status.textContent = view.message;
      if (view.progress != null) bar.value = view.progress; else bar.removeAttribute("value");
    });
    await refreshDirections();
  } catch (e) {
    showError(e.message);
    await refreshDirections();
  }
}

// -- interpolate

function setEnd(which) {
  studio.ends[which] = JSON.parse(JSON.stringify(studio.state));
  $(`#interp-${which}-img`).src = $("#current").src;
}

function interpolationRequest() {
  if (!studio.ends.a || !studio.ends.b) throw new Error("interpolation: choose both ends (A and B) first");
  return {
    a: stateForServer(studio.ends.a), b: stateForServer(studio.ends.b), mode: $("#interp-mode").value,
    space: $("#interp-space").value, steps: Number($("#interp-steps").value),
  };
}

async function interpolateNow() {
  try {
    const out = await api("/api/interpolation", interpolationRequest());
    Object.assign($("#interp-strip"), { src: out.strip, hidden: false });
    Object.assign($("#interp-gif"), { src: out.gif, hidden: false });
    $("#interp-notes").textContent = out.notes.join("; ");
    $("#interp-png").disabled = $("#interp-gif-download").disabled = false;
    showError("");
  } catch (e) { showError(e.message); }
}

// -- downloads (the server renders; the browser saves what it is given)

async function saveDownload(path, body, fallbackName) {
  try {
    const response = await api(path, body, { raw: true });
    const blob = await response.blob();
    const disposition = response.headers.get("Content-Disposition") || "";
    const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || fallbackName;
    const a = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: name });
    document.body.append(a);
    a.click();
    a.remove();
    const saved = response.headers.get("X-Ganforge-Saved");
    $("#export-status").textContent = saved ? `downloaded ${name}; also saved as ${saved} (with its side file `
      + `${name}.json naming the generator)` : `downloaded ${name}`;
    if (saved) {
      const side = Object.assign(document.createElement("a"), { href: `/api/exports/${name}.json`, textContent: " side file" });
      $("#export-status").append(side);
    }
    showError("");
  } catch (e) { showError(e.message); }
}

// -- invert

let files = [];

function chooseFiles(list) {
  files = Array.from(list);
  $("#invert-run").disabled = files.length === 0;
  $("#invert-jobs").textContent = files.length ? `${files.length} image${files.length > 1 ? "s" : ""} chosen` : "";
}

async function invertAll() {
  const method = $("#invert-method").value;
  const steps = $("#invert-steps").value;
  for (const file of files) {
    const line = document.createElement("div");
    line.textContent = `${file.name}: uploading…`;
    $("#invert-jobs").append(line);
    const q = new URLSearchParams({ name: file.name, method });
    if (steps) q.set("steps", steps);
    if (studio.state.class_index != null) q.set("class_index", studio.state.class_index);
    try {
      const response = await fetch(`/api/invert?${q}`, { method: "POST", body: file });
      const out = await response.json();
      if (!response.ok) throw new Error(out.error);
      const result = await follow(out.job, (view) => { line.textContent = `${file.name}: ${view.message}`; });
      line.remove();
      addResult(result);
    } catch (e) {
      line.textContent = `${file.name}: ${e.message}`;
      line.className = "error";
      showError(e.message);
    }
  }
}

function addResult(r) {
  const row = document.createElement("div");
  row.className = "result";
  row.dataset.latent = r.latent;
  row.dataset.psnr = r.psnr;
  row.innerHTML = `<img alt="target" src="${r.target}"><img alt="reconstruction" src="${r.reconstruction}">
    <div><b>${r.name}</b><br>PSNR <span class="psnr">${r.psnr.toFixed(2)}</span> dB · ${r.method}, ${r.space}
    ${r.notes.length ? "<br><span class=hint>" + r.notes.join("; ") + "</span>" : ""}</div>`;
  const edit = Object.assign(document.createElement("button"), { textContent: "edit this" });
  edit.onclick = () => { setSource({ latent: r.latent }); selectTab("edit"); };
  row.append(edit);
  $("#invert-results").prepend(row);
}

// -- wiring

function selectTab(name) {
  $$(".tab").forEach((t) => t.setAttribute("aria-selected", String(t.dataset.tab === name)));
  $$(".panel").forEach((p) => { p.hidden = p.id !== `panel-${name}`; });
}

async function start() {
  let info;
  try { info = studio.info = await api("/api/info"); } catch (e) { showError(e.message); return; }
  $("#run-info").textContent = `${info.run} · ${info.generator} · step ${info.step} · ${info.shape.join("×")}`;
  $$(".style-only").forEach((el) => { el.hidden = !info.style; });
  for (const group of ["coarse", "middle", "fine"]) {
    const r = info.layer_ranges[group];
    const box = $(`#mix-${group}`);
    if (r && r[0] === r[1]) { box.disabled = true; box.checked = false; box.parentElement.title = "no layers here"; }
  }
  if (info.classes) {
    $("#class-box").hidden = false;
    $("#class").replaceChildren(...info.classes.map((name, i) => new Option(name, i)));
    studio.state.class_index = 0;
  }
  $("#interp-space").replaceChildren(...info.spaces.filter((s) => s !== "w+").map((s) => new Option(s)));
  $("#invert-method").replaceChildren(...info.inversion_methods.map((m) => new Option(m, m, m === "hybrid", m === "hybrid")));
  renderDirections(info.directions);

  $$(".tab").forEach((t) => { t.onclick = () => selectTab(t.dataset.tab); });
  $("#seed").addEventListener("change", () => { setSource({ seed: Math.max(0, Number($("#seed").value) | 0) }); loadGrid(); });
  $("#seed-random").onclick = () => { setSource({ seed: Math.floor(Math.random() * 1e6) }); loadGrid(); };
  $("#class").addEventListener("change", () => {
    studio.state.class_index = Number($("#class").value);
    studio.state.latent = "";
    studio.state.edits = {};
    refreshDirections(); loadGrid(); requestRender();
  });
  $("#psi").addEventListener("input", () => {
    studio.state.psi = Number($("#psi").value);
    $("#psi-value").textContent = studio.state.psi.toFixed(2);
    requestRender();
  });
  $("#psi").addEventListener("change", loadGrid);
  const mixChanged = () => {
    studio.state.mixOn = $("#mix-enabled").checked;
    studio.state.mixSeed = Math.max(0, Number($("#mix-seed").value) | 0);
    studio.state.mixLayers = mixLayersFromPage();
    if (studio.state.mixOn && studio.state.mixLayers.length === 0) {
      showError("style mixing: tick at least one of coarse, middle, fine");
      return;
    }
    requestRender();
  };
  $$("#mixing input").forEach((el) => el.addEventListener("change", mixChanged));
  $("#reset-sliders").onclick = () => { studio.state.edits = {}; $$("input[data-slider]").forEach((i) => { i.value = 0; }); requestRender(); };
  $("#interp-a").onclick = () => setEnd("a");
  $("#interp-b").onclick = () => setEnd("b");
  $("#interp-run").onclick = interpolateNow;
  $("#interp-png").onclick = () => { try { saveDownload("/api/interpolation?format=png", interpolationRequest(), "interpolation.png"); } catch (e) { showError(e.message); } };
  $("#interp-gif-download").onclick = () => { try { saveDownload("/api/interpolation?format=gif", interpolationRequest(), "interpolation.gif"); } catch (e) { showError(e.message); } };
  $("#export-png").onclick = () => saveDownload("/api/export/image", stateForServer(), "image.png");
  $("#export-strip").onclick = () => {
    if (!studio.lastSlider) { showError("edit strip: move a direction's slider first (the strip varies the last one moved)"); return; }
    const alphas = Array.from({ length: 7 }, (_, i) => i - 3);
    saveDownload("/api/export/strip", { state: stateForServer(), slider: studio.lastSlider, alphas }, "edit-strip.png");
  };
  $("#export-latent").onclick = () => saveDownload("/api/export/latent", stateForServer(), "latent.npy");
  $("#upload").addEventListener("change", (e) => chooseFiles(e.target.files));
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); chooseFiles(e.dataTransfer.files); });
  $("#invert-run").onclick = invertAll;
  loadGrid();
  requestRender();
}

start();
