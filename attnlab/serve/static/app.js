// attnlab explorer: asks the JSON API for the tags and attention weights of a sentence and
// draws one head at a time as a heatmap (canvas) and as lines between tokens (SVG).
// weights[l][h][i][j] = alpha'_(i,j) of head h in layer l: query token i, key token j.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";

const state = { tokens: [], tags: [], probs: [], weights: null, layer: 0, head: 0, focus: null, normalize: "softmax" };

// -- colours: the viridis scale, sampled at nine points and interpolated ---------------------
const VIRIDIS = [
  [68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [110, 206, 88], [253, 231, 37],
];

function colour(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  const c = VIRIDIS[i].map((v, k) => Math.round(v + f * (VIRIDIS[i + 1][k] - v)));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

// -- talking to the API ----------------------------------------------------------------------
async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new Error("cannot reach the server: is `attnlab serve` still running?");
  }
  let data = null;
  try { data = await response.json(); } catch (err) { /* not JSON: reported below */ }
  if (!response.ok) {
    throw new Error((data && data.error) || `the server answered ${response.status}`);
  }
  return data;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function fillSelect(select, count, word) {
  const keep = Math.min(Number(select.value) || 0, count - 1);
  select.replaceChildren();
  for (let i = 0; i < count; i++) {
    const option = document.createElement("option");
    option.value = String(i);
    option.textContent = `${word} ${i + 1}`;
    select.appendChild(option);
  }
  select.value = String(Math.max(keep, 0));
}

async function loadHealth() {
  try {
    const health = await api("/api/health");
    const m = health.model;
    $("model-info").textContent =
      `model ${m.name}: ${m.layers} layers × ${m.heads} heads, ${m.normalize}; ` +
      `at most ${health.limits.max_tokens} tokens per sentence`;
    fillSelect($("layer"), m.layers, "layer");
    fillSelect($("head"), m.heads, "head");
  } catch (err) {
    $("model-info").textContent = "";
    showError(err.message);
  }
}

async function submit(event) {
  event.preventDefault();
  const text = $("sentence").value.trim();
  if (!text) { showError("type a sentence first"); return; }
  const button = $("submit");
  button.disabled = true;
  document.body.dataset.ready = "0";
  try {
    const data = await api("/api/attention", { text });
    showError("");
    state.tokens = data.tokens; state.tags = data.tags; state.probs = data.probabilities;
    state.weights = data.weights; state.normalize = data.normalize; state.focus = null;
    fillSelect($("layer"), data.layers, "layer");
    fillSelect($("head"), data.heads, "head");
    state.layer = Number($("layer").value); state.head = Number($("head").value);
    $("result").hidden = false;
    renderTags();
    renderViews();
    document.body.dataset.ready = "1";
  } catch (err) {
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

// -- the tagged sentence ---------------------------------------------------------------------
function renderTags() {
  const box = $("tagged");
  box.replaceChildren();
  state.tokens.forEach((word, i) => {
    const chip = document.createElement("span");
    chip.className = "token";
    chip.dataset.index = String(i);
    chip.title = `P(${state.tags[i]}) = ${state.probs[i].toFixed(3)}`;
    for (const [cls, text] of [["word", word], ["tag", state.tags[i]], ["prob", state.probs[i].toFixed(2)]]) {
      const part = document.createElement("span");
      part.className = cls;
      part.textContent = text;
      chip.appendChild(part);
    }
    chip.addEventListener("mouseenter", () => setFocus({ side: "query", index: i }));
    chip.addEventListener("mouseleave", () => setFocus(null));
    box.appendChild(chip);
  });
}

function setFocus(focus) {
  const same = (a, b) => (a === null && b === null) || (a !== null && b !== null && a.side === b.side && a.index === b.index);
  if (same(state.focus, focus)) return;
  state.focus = focus;
  document.querySelectorAll("#tagged .token").forEach((chip) => {
    chip.classList.toggle("focus", focus !== null && Number(chip.dataset.index) === focus.index);
  });
  renderViews();
}

function currentHead() {
  return state.weights[state.layer][state.head];  // (n, n): rows = queries, columns = keys
}

function scaleMax(w) {
  // softmax weights lie in [0, 1]; other normalizations may go above 1
  let top = 0;
  for (const row of w) for (const v of row) top = Math.max(top, v);
  return state.normalize === "softmax" ? 1 : Math.max(top, 1e-9);
}

function renderViews() {
  if (!state.weights) return;
  const w = currentHead();
  const vmax = scaleMax(w);
  drawHeatmap(w, vmax);
  drawLines(w, vmax);
}

// -- the heatmap -----------------------------------------------------------------------------
const heat = { left: 0, top: 0, cell: 0, n: 0 };

function drawHeatmap(w, vmax) {
  const canvas = $("heatmap");
  const ctx = canvas.getContext("2d");
  const n = state.tokens.length;
  const font = "13px system-ui, sans-serif";
  ctx.font = font;
  const rowLabels = state.tokens.map((t, i) => `${t}  ${state.tags[i]}`);
  const widest = (labels) => Math.max(...labels.map((s) => ctx.measureText(s).width));
  const cell = Math.max(14, Math.min(40, Math.floor(420 / n)));
  const left = Math.ceil(widest(rowLabels)) + 14;
  const top = Math.ceil(widest(state.tokens)) + 14;
  const bar = 70;  // the colour scale on the right
  const width = left + n * cell + bar, height = top + n * cell + 12;

  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
  canvas.style.width = `${width}px`; canvas.style.height = `${height}px`;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  Object.assign(heat, { left, top, cell, n });

  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      ctx.fillStyle = colour(w[i][j] / vmax);
      ctx.fillRect(left + j * cell, top + i * cell, cell, cell);
    }
  }
  if (state.focus) {
    ctx.strokeStyle = "#e4572e"; ctx.lineWidth = 2;
    const k = state.focus.index;
    if (state.focus.side === "query") ctx.strokeRect(left + 1, top + k * cell + 1, n * cell - 2, cell - 2);
    else ctx.strokeRect(left + k * cell + 1, top + 1, cell - 2, n * cell - 2);
  }

  ctx.font = font; ctx.fillStyle = "#1d232a"; ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  state.tokens.forEach((t, i) => {
    const y = top + (i + 0.5) * cell;
    ctx.fillStyle = "#2a6fb0";
    ctx.fillText(state.tags[i], left - 8, y);
    const tagWidth = ctx.measureText(state.tags[i] + "  ").width;
    ctx.fillStyle = "#1d232a";
    ctx.fillText(t, left - 8 - tagWidth, y);
  });
  ctx.textAlign = "left";
  state.tokens.forEach((t, j) => {  // key tokens, written upwards above their column
    ctx.save();
    ctx.translate(left + (j + 0.5) * cell, top - 8);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText(t, 0, 0);
    ctx.restore();
  });

  const x0 = left + n * cell + 16, h = n * cell;  // colour scale
  for (let y = 0; y < h; y++) {
    ctx.fillStyle = colour(1 - y / h);
    ctx.fillRect(x0, top + y, 14, 1);
  }
  ctx.fillStyle = "#1d232a"; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "left";
  ctx.fillText(vmax.toFixed(2), x0 + 18, top + 5);
  ctx.fillText("0", x0 + 18, top + h - 5);

  canvas.dataset.layer = String(state.layer);
  canvas.dataset.head = String(state.head);
  canvas.setAttribute("aria-label", `attention heatmap of layer ${state.layer + 1}, head ${state.head + 1}`);
}

function readCell(event) {
  if (!state.weights || !heat.n) return;
  const rect = $("heatmap").getBoundingClientRect();
  const j = Math.floor((event.clientX - rect.left - heat.left) / heat.cell);
  const i = Math.floor((event.clientY - rect.top - heat.top) / heat.cell);
  const readout = $("readout");
  if (i < 0 || j < 0 || i >= heat.n || j >= heat.n) { readout.textContent = ""; return; }
  const v = currentHead()[i][j];
  readout.textContent = `α′(${i + 1} “${state.tokens[i]}” → ${j + 1} “${state.tokens[j]}”) = ${v.toFixed(4)}`;
}

// -- the line view ---------------------------------------------------------------------------
function svgElement(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function drawLines(w, vmax) {
  const svg = $("lines");
  const n = state.tokens.length;
  const row = 24, pad = 34, width = 400;
  const xLeft = 150, xRight = 250;
  const height = pad + 12 + n * row;
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const y = (i) => pad + (i + 0.5) * row;
  const f = state.focus;

  const links = svgElement("g", { stroke: "#2a6fb0", "stroke-width": 2.5, "stroke-linecap": "round" });
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = w[i][j] / vmax;
      if (v < 0.005) continue;
      if (f && ((f.side === "query" && f.index !== i) || (f.side === "key" && f.index !== j))) continue;
      links.appendChild(svgElement("line", {
        x1: xLeft + 6, y1: y(i), x2: xRight - 6, y2: y(j), "stroke-opacity": Math.min(v, 1).toFixed(3),
      }));
    }
  }
  svg.appendChild(links);
  svg.appendChild(svgElement("text", { x: xLeft, y: 16, "text-anchor": "end", class: "tag" }, "query i"));
  svg.appendChild(svgElement("text", { x: xRight, y: 16, "text-anchor": "start", class: "tag" }, "key j"));

  for (const side of ["query", "key"]) {
    state.tokens.forEach((t, i) => {
      const isLeft = side === "query";
      const focused = f && f.side === side && f.index === i;
      const label = svgElement("text", {
        x: isLeft ? xLeft : xRight, y: y(i), "text-anchor": isLeft ? "end" : "start",
        "dominant-baseline": "middle", class: focused ? "focus" : "",
      }, t);
      label.addEventListener("mouseenter", () => setFocus({ side, index: i }));
      label.addEventListener("mouseleave", () => setFocus(null));
      svg.appendChild(label);
      svg.appendChild(svgElement("text", {
        x: isLeft ? 8 : width - 8, y: y(i), "text-anchor": isLeft ? "start" : "end",
        "dominant-baseline": "middle", class: "tag",
      }, state.tags[i]));
    });
  }
}

// -- wiring ----------------------------------------------------------------------------------
$("sentence-form").addEventListener("submit", submit);
$("layer").addEventListener("change", () => { state.layer = Number($("layer").value); renderViews(); });
$("head").addEventListener("change", () => { state.head = Number($("head").value); renderViews(); });
$("heatmap").addEventListener("mousemove", readCell);
$("heatmap").addEventListener("mouseleave", () => { $("readout").textContent = ""; });
loadHealth();
