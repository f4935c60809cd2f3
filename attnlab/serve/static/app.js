// attnlab explorer: asks the JSON API for the tags and attention weights of a sentence and
// draws them in four views: one head (heatmap + lines, several heads overlaid), the whole
// model (every layer x head), the seed's steps of one head with their numbers (static/steps.js), and two
// sentences side by side. weights[l][h][i][j] = alpha'_(i,j) of head h in layer l: query
// token i, key token j (numbered from 0 here, from 1 on the page and in the URL).
// The view lives in the URL (#text=...&layer=..&head=..&view=..&top=..&min=..&pin=q3), so a link
// reopens it. Embedded in a notebook (attnlab.viz.show), window.ATTNLAB_EMBED holds the API's answers.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const VIEWS = ["head", "model", "steps", "compare"];
const SCALES = ["row", "matrix", "fixed"];

const state = {
  data: null,          // the answer of /api/attention for the sentence
  text: "",            // ... which was this
  other: null,         // ... for the second sentence (compare view)
  steps: new Map(),    // "layer,head" -> the answer of /api/steps
  layer: 0, head: 0, query: 0, view: "head", scale: "row",
  overlay: new Set([0]),  // heads drawn in the line view
  hover: null,            // {side: "query" | "key", index}: the token under the pointer or the keyboard focus
  pin: null,              // ... the token clicked (or Enter): it stays until Escape or a second click
  cursor: null,           // {i, j}: the heatmap cell the arrow keys are on while the map has the focus
  zoom: 0,                // the heatmap's cell in px; 0: fit the sentence to the page
  labels: [],             // the tokens as the page names them: a repeated word with its position (saw₂)
  shownLayers: null,      // the tag layers (and "P", the probabilities) written in the chips
  // the token the head view follows: the pinned one, else the one under the pointer
  get focus() { return this.pin || this.hover; },
  set focus(token) { this.hover = token; },
};

// -- colours ----------------------------------------------------------------------------------
// the viridis scale, sampled at nine points and interpolated
const VIRIDIS = [
  [68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [110, 206, 88], [253, 231, 37],
];
// one colour per head in the line view, told apart by hue; each lies between the light and the dark
// page in luminance, so it has at least 3:1 contrast against both
const HEAD_COLOURS = ["#2f78d0", "#d25a00", "#1e8c4e", "#a055d6", "#cc3d8e", "#0f8a94", "#8a7d00", "#7a8088"];

function colour(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  const c = VIRIDIS[i].map((v, k) => Math.round(v + f * (VIRIDIS[i + 1][k] - v)));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

function headColour(h) { return HEAD_COLOURS[h % HEAD_COLOURS.length]; }

// The colour scale of a view: t(i, j) in [0, 1] and the legend's words.
function colourScale(w, mode) {
  if (mode === "row") {
    const tops = w.map((row) => Math.max(...row, 1e-12));
    return { t: (i, j) => w[i][j] / tops[i], top: "row max", text: "colour: α′ divided by the largest α′ of its row (each query's strongest key is yellow)" };
  }
  if (mode === "matrix") {
    const top = Math.max(1e-12, ...w.map((row) => Math.max(...row)));
    return { t: (i, j) => w[i][j] / top, top: top.toFixed(2), text: `colour: α′ from 0 to ${top.toFixed(3)}, the largest α′ of this head` };
  }
  return { t: (i, j) => w[i][j], top: "1", text: "colour: α′ on a fixed scale from 0 to 1" };
}


// -- light and dark ------------------------------------------------------------------------------
// The page follows the system (prefers-color-scheme) unless the reader picks a theme, which is
// remembered (localStorage). Canvases take their colours from the page's CSS variables.
const THEMES = ["auto", "light", "dark"];

function storedTheme() {
  try {
    const t = localStorage.getItem("attnlab-theme");
    return THEMES.includes(t) ? t : "auto";
  } catch (err) { return "auto"; }  // a page without storage (a sandboxed notebook frame)
}

function setTheme(choice, remember) {
  if (choice === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = choice;
  $("theme").value = choice;
  if (remember) {
    try { localStorage.setItem("attnlab-theme", choice); } catch (err) { /* this page only */ }
  }
  if (state.data && !state.data.no_attention) render();
}

function cssColour(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

// -- naming tokens -------------------------------------------------------------------------------
const SUBSCRIPT = "₀₁₂₃₄₅₆₇₈₉";

// The tokens as the page names them: a word that occurs more than once carries its position
// (1-based, as a subscript), so "I saw a saw" reads "I saw₂ a saw₄".
function tokenLabels(tokens) {
  const count = new Map();
  for (const t of tokens) count.set(t, (count.get(t) || 0) + 1);
  return tokens.map((t, i) => (count.get(t) > 1 ? t + String(i + 1).replace(/\d/g, (c) => SUBSCRIPT[c]) : t));
}

// -- talking to the API -------------------------------------------------------------------------
function embedded(path, body) {
  // the answers a notebook embedded in the page (attnlab.viz.show), by sentence
  const e = window.ATTNLAB_EMBED;
  if (path === "/api/health") return e.health;
  const found = e.sentences[body.text];
  if (!found) {
    throw new Error(`this page was saved with ${Object.keys(e.sentences).map((s) => `“${s}”`).join(" and ")} only; ` +
                    "call attnlab.viz.show with another sentence");
  }
  if (path === "/api/attention") return found.attention;
  return found.steps[`${body.layer},${body.head}`];
}

async function api(path, body) {
  if (window.ATTNLAB_EMBED) return embedded(path, body);
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

function fillSelect(select, labels, value) {
  select.replaceChildren();
  labels.forEach((label, i) => {
    const option = document.createElement("option");
    option.value = String(i);
    option.textContent = label;
    select.appendChild(option);
  });
  select.value = String(Math.min(Math.max(value, 0), labels.length - 1));
  return Number(select.value);
}

function numbered(count, word) { return Array.from({ length: count }, (_, i) => `${word} ${i + 1}`); }

async function loadHealth() {
  try {
    const health = await api("/api/health");
    const m = health.model;
    if (m.no_tags) $("submit").textContent = "Attend";  // a checkpoint: nothing to tag
    const most = health.limits.max_tokens ? `; at most ${health.limits.max_tokens} tokens per sentence` : "";
    $("model-info").textContent = m.no_attention
      ? `model ${m.name}: tags only (no attention)${most}`
      : `model ${m.name}: ${m.layers} layers × ${m.heads} heads, ${m.normalize}` +
        (m.no_tags ? `; ${m.model_type} checkpoint: word pieces, no tags` : "") + most;
  } catch (err) {
    $("model-info").textContent = "";
    showError(err.message);
  }
}

// -- the sentence -------------------------------------------------------------------------------
function clearResult() {
  state.data = null; state.other = null; state.steps.clear(); state.hover = null; state.cursor = null; state.labels = [];
  $("result").hidden = true;
  for (const id of ["tagged", "tag-layers", "token-detail", "thumbs", "steps-panel", "lines", "hover-info", "readout"]) {
    $(id).replaceChildren();
  }
}

async function submit(event) {
  if (event) event.preventDefault();
  const text = $("sentence").value.trim();
  if (!text) { clearResult(); showError("type a sentence first"); return; }
  if (event && text !== state.text) state.pin = null;  // a new sentence: a pinned word of the old one means nothing
  const button = $("submit");
  button.disabled = true;
  document.body.dataset.ready = "0";
  try {
    const data = await api("/api/attention", { text });
    showError("");
    clearResult();
    state.data = data; state.text = text;
    state.labels = tokenLabels(data.tokens);
    state.query = Math.min(state.query, data.tokens.length - 1);
    if (state.pin && state.pin.index >= data.tokens.length) state.pin = null;
    $("result").hidden = false;
    renderTags($("tagged"), data, true);
    setupAttention();
    await render();
    document.body.dataset.ready = "1";
  } catch (err) {
    clearResult();  // never leave the previous sentence's results under the message
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

function setupAttention() {
  const d = state.data;
  // a checkpoint without a tagging head: its word pieces stand where the tags would
  $("no-tags").hidden = !d.no_tags;
  $("no-tags").textContent = d.no_tags ? `No tags: ${d.no_tags}.` : "";
  $("tags-heading").textContent = d.no_tags ? "Word pieces" : "Tags";
  const none = Boolean(d.no_attention);
  $("no-attention").hidden = !none;
  $("no-attention").textContent = none ? `No attention to draw: ${d.no_attention}.` : "";
  $("attention").hidden = none;
  if (none) return;
  state.layer = fillSelect($("layer"), numbered(d.layers, "layer"), state.layer);
  state.head = fillSelect($("head"), numbered(d.heads, "head"), state.head);
  state.query = fillSelect($("query"), d.tokens.map((t, i) => `${i + 1}: ${t}`), state.query);
  state.overlay = new Set([...state.overlay].filter((h) => h < d.heads));
  if (!state.overlay.size) state.overlay.add(state.head);
  renderToggles();
}

// -- the tagged sentence: a chip per word, the tag layers on demand ------------------------------
// Each chip holds the word and every layer's tag and probability, but shows only the layers ticked
// above it (the first, UPOS, at the start), so 40 words take a few lines. The word under the
// pointer or pinned has every layer with its probability written out in #token-detail.
function tagLayers(data) {
  return data.annotations || [{ name: "UPOS", tags: data.tags, probabilities: data.probs }];
}

function renderTags(box, data, interactive) {
  box.replaceChildren();
  const layers = tagLayers(data);
  if (!state.shownLayers) state.shownLayers = new Set(layers.slice(0, 1).map((a) => a.name));
  data.tokens.forEach((word, i) => {
    const chip = document.createElement("span");
    chip.className = "token";
    chip.dataset.index = String(i);
    chip.title = layers.map((a) => `${a.name} ${a.tags[i]}: P = ${a.probabilities[i].toFixed(3)}`).join("\n");
    const part = (cls, text) => {
      const el = document.createElement("span");
      el.className = cls; el.textContent = text; chip.appendChild(el);
      return el;
    };
    part("word", word);
    layers.forEach((a, k) => {
      part(k === 0 ? "tag" : "tag extra", a.tags[i]).dataset.layer = a.name;
      part("prob", a.probabilities[i].toFixed(2)).dataset.layer = a.name;
    });
    if (interactive) {
      chip.tabIndex = i === 0 ? 0 : -1;  // one stop for Tab; the arrow keys walk the sentence
      chip.setAttribute("role", "button");
      chip.setAttribute("aria-pressed", "false");
      const token = { side: "query", index: i };
      chip.addEventListener("mouseenter", () => setHover(token));
      chip.addEventListener("mouseleave", () => setHover(null));
      chip.addEventListener("focus", () => setHover(token));
      chip.addEventListener("blur", () => setHover(null));
      chip.addEventListener("click", () => togglePin(token));
      chip.addEventListener("keydown", (e) => walk(e, "#tagged .token", i, token));
    }
    box.appendChild(chip);
  });
  if (interactive) renderLayerSwitches(layers);
  showLayers();
  showFocus();
}

// "Show: [x] UPOS [ ] XPOS [ ] FEATS [ ] LEMMA [ ] probabilities" above the chips.
function renderLayerSwitches(layers) {
  const box = $("tag-layers");
  box.replaceChildren();
  box.hidden = !layers.length;
  if (!layers.length) return;
  box.append("Show");
  for (const name of [...layers.map((a) => a.name), "P"]) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox"; input.value = name; input.checked = state.shownLayers.has(name);
    input.addEventListener("change", () => {
      if (input.checked) state.shownLayers.add(name); else state.shownLayers.delete(name);
      showLayers();
    });
    label.append(input, name === "P" ? " probabilities" : ` ${name}`);
    box.appendChild(label);
  }
}

function showLayers() {
  const shown = state.shownLayers || new Set();
  document.querySelectorAll("#tagged .tag").forEach((el) => { el.hidden = !shown.has(el.dataset.layer); });
  document.querySelectorAll("#tagged .prob").forEach((el) => { el.hidden = !(shown.has("P") && shown.has(el.dataset.layer)); });
}

// Arrow keys, Home and End move along a row of focusable tokens (one of them in the Tab order),
// Enter or Space pins the token.
function walk(event, selector, i, token) {
  const items = [...document.querySelectorAll(selector)];
  const n = items.length;
  const to = { ArrowRight: i + 1, ArrowDown: i + 1, ArrowLeft: i - 1, ArrowUp: i - 1, Home: 0, End: n - 1 }[event.key];
  if (to !== undefined) {
    event.preventDefault();
    const k = Math.min(Math.max(to, 0), n - 1);
    items.forEach((el, m) => el.setAttribute("tabindex", m === k ? "0" : "-1"));
    items[k].focus();
  } else if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    togglePin(token);
  }
}

// -- the token the head view follows: pointed at (or keyboard-focused), or pinned ------------------
const sameToken = (a, b) => a === b || (a !== null && b !== null && a.side === b.side && a.index === b.index);

function setHover(token) {
  if (sameToken(state.hover, token)) return;
  state.hover = token;
  showFocus();
}

function togglePin(token) {
  state.pin = token === null || sameToken(state.pin, token) ? null : token;
  showFocus();
  writeUrl();
}

// Marks the followed token everywhere: its chip, the read-outs, the heatmap's frame, the lines.
function showFocus() {
  const f = state.focus, pin = state.pin;
  document.querySelectorAll("#tagged .token").forEach((chip) => {
    const i = Number(chip.dataset.index);
    chip.classList.toggle("focus", f !== null && f.index === i);
    chip.classList.toggle("pinned", pin !== null && pin.index === i);
    if (chip.hasAttribute("aria-pressed")) chip.setAttribute("aria-pressed", String(pin !== null && pin.index === i));
  });
  describeToken();
  if (state.view === "head" && state.data && !state.data.no_attention) {
    drawHead();
    drawLinks();
    describeFocus();
  }
}

// Every tag layer of the followed word with its probability, in a box of fixed height.
function describeToken() {
  const box = $("token-detail");
  const d = state.data;
  const layers = d ? tagLayers(d) : [];
  box.hidden = !d || !layers.length;
  if (box.hidden) return;
  const f = state.focus;
  if (!f) { box.textContent = "Point at a word or click it (it stays pinned) to read every layer with its probability."; return; }
  box.replaceChildren();
  const name = document.createElement("b");
  name.textContent = `${f.index + 1} “${state.labels[f.index]}”${sameToken(f, state.pin) ? " (pinned)" : ""}:`;
  box.appendChild(name);
  for (const a of layers) {
    const part = document.createElement("span");
    part.className = "layer"; part.dataset.layer = a.name;
    part.textContent = ` ${a.name} ${a.tags[f.index]} P = ${a.probabilities[f.index].toFixed(2)}`;
    box.appendChild(part);
  }
}

function headWeights(data, layer, head) { return data.weights[layer][head]; }  // (n, n)

// -- rendering the chosen view --------------------------------------------------------------------
async function render() {
  writeUrl();
  if (!state.data || state.data.no_attention) return;
  document.querySelectorAll("#view-tabs button").forEach((b) => b.classList.toggle("active", b.dataset.view === state.view));
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== state.view;
  const legend = colourScale(headWeights(state.data, state.layer, state.head), state.scale).text;
  $("legend-text").textContent = state.view === "model" && state.scale === "matrix"
    ? "colour: α′ from 0 to the largest α′ of each head (one scale per thumbnail)" : legend;
  try {
    if (state.view === "head") renderHead();
    else if (state.view === "model") renderModel();
    else if (state.view === "steps") await renderSteps();
    else await renderCompare();
  } catch (err) {
    showError(err.message);
  }
}

function renderHead() {
  drawHead();
  drawLines();
  describeFocus();
}

// -- the heatmap ----------------------------------------------------------------------------------
const ZOOM_CELLS = [12, 14, 16, 20, 24, 32, 40, 48, 64];  // px per cell; 12 is the smallest row a 11 px label fits

// The head view's heatmap at the zoom chosen (or fitted to the page), with the followed token framed.
function drawHead() {
  const canvas = $("heatmap");
  drawHeatmap(canvas, state.data, headWeights(state.data, state.layer, state.head), {
    focus: state.focus, cursor: state.cursor, cell: state.zoom, fit: $("views").clientWidth, labels: state.labels,
  });
  canvas.dataset.layer = String(state.layer);
  canvas.dataset.head = String(state.head);
  canvas.setAttribute("aria-label", `attention heatmap of layer ${state.layer + 1}, head ${state.head + 1}: ` +
                      "arrow keys move between cells, Enter pins the row's word, + and − zoom");
  const cell = canvas.geometry.cell;
  $("zoom-level").textContent = `${cell} px per cell${state.zoom ? "" : " (fit)"}`;
  $("zoom-out").disabled = cell <= ZOOM_CELLS[0];
  $("zoom-in").disabled = cell >= ZOOM_CELLS[ZOOM_CELLS.length - 1];
}

// Draws w (n x n) with the tokens on both axes; remembers its geometry on the canvas for readCell.
// The canvas is never shown smaller than drawn (a long sentence scrolls in its box), so its labels
// keep their size: 11 px below 16 px cells, 13 px above. cell: px per cell (0: chosen from the
// space: fit, the width there is, or area, the width of the cells); labels: the axes' names.
function drawHeatmap(canvas, data, w, { focus = null, cursor = null, maxCell = 40, area = 420, cell = 0, fit = 0, labels = null } = {}) {
  const ctx = canvas.getContext("2d");
  const n = data.tokens.length;
  labels = labels || tokenLabels(data.tokens);
  const measure = (px) => { ctx.font = `${px}px system-ui, sans-serif`; return (s) => ctx.measureText(s).width; };
  let width = measure(11);
  const side = (wd) => Math.ceil(Math.max(...labels.map(wd)) + (data.tags.length ? Math.max(...data.tags.map(wd)) + 10 : 0)) + 14;
  const bar = 100;  // the colour scale on the right
  if (!cell) {
    const room = fit ? Math.min(480, fit - side(width) - bar - 4) : area;
    cell = Math.max(ZOOM_CELLS[0], Math.min(maxCell, Math.floor(room / n)));
  }
  const fontPx = cell < 16 ? 11 : 13;  // labels no taller than their row
  const font = `${fontPx}px system-ui, sans-serif`;
  width = measure(fontPx);
  const tagGap = data.tags.length ? Math.max(...data.tags.map(width)) + 10 : 0;  // no tags: word pieces alone
  const left = side(width);
  // a key label that fits in its column is written upright; a longer one upwards
  const upright = labels.map((t) => width(t) <= cell - 3);
  const top = Math.ceil(Math.max(16, ...labels.map((t, j) => (upright[j] ? 16 : width(t))))) + 14;
  const W = left + n * cell + bar, H = top + n * cell + 12;
  const ink = cssColour("--ink", "#1d232a");
  sizeCanvas(canvas, ctx, W, H, cssColour("--panel", "white"));
  canvas.geometry = { left, top, cell, n, w, tokens: data.tokens, labels, fontPx };

  const scale = colourScale(w, state.scale);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      ctx.fillStyle = colour(scale.t(i, j));
      ctx.fillRect(left + j * cell, top + i * cell, cell, cell);
    }
  }
  if (focus) {
    ctx.strokeStyle = "#e4572e"; ctx.lineWidth = 2;
    const k = focus.index;
    if (focus.side === "query") ctx.strokeRect(left + 1, top + k * cell + 1, n * cell - 2, cell - 2);
    else ctx.strokeRect(left + k * cell + 1, top + 1, cell - 2, n * cell - 2);
  }
  if (cursor) {  // the cell the arrow keys are on: black and white, seen on every colour of the scale
    const x = left + cursor.j * cell, y = top + cursor.i * cell;
    ctx.lineWidth = 3; ctx.strokeStyle = "#000000"; ctx.strokeRect(x + 1.5, y + 1.5, cell - 3, cell - 3);
    ctx.lineWidth = 1; ctx.strokeStyle = "#ffffff"; ctx.strokeRect(x + 1.5, y + 1.5, cell - 3, cell - 3);
  }
  drawAxisLabels(ctx, data, { left, top, cell, tagGap, upright, font, labels, ink });
  drawLegend(ctx, scale, left + n * cell + 16, top, n * cell, ink);
}

function sizeCanvas(canvas, ctx, width, height, background = "white") {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
  canvas.style.width = `${width}px`;  // the height follows from the aspect ratio (CSS height: auto)
  canvas.cssWidth = width;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = background;
  ctx.fillRect(0, 0, width, height);
}

function drawAxisLabels(ctx, data, { left, top, cell, tagGap, upright, font, labels, ink }) {
  ctx.font = font; ctx.textBaseline = "middle"; ctx.textAlign = "right";
  labels.forEach((t, i) => {  // query tokens and their tags, left of their row
    const y = top + (i + 0.5) * cell;
    ctx.fillStyle = cssColour("--accent", "#2a6fb0");
    ctx.fillText(data.tags[i] || "", left - 8, y);
    ctx.fillStyle = ink;
    ctx.fillText(t, left - 8 - tagGap, y);
  });
  labels.forEach((t, j) => {  // key tokens above their column
    const x = left + (j + 0.5) * cell;
    ctx.save();
    if (upright[j]) {
      ctx.textAlign = "center"; ctx.textBaseline = "alphabetic";
      ctx.fillText(t, x, top - 8);
    } else {
      ctx.translate(x, top - 8);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      ctx.fillText(t, 0, 0);
    }
    ctx.restore();
  });
}

function drawLegend(ctx, scale, x0, top, h, ink = "#1d232a") {
  for (let y = 0; y < h; y++) {
    ctx.fillStyle = colour(1 - y / h);
    ctx.fillRect(x0, top + y, 14, 1);
  }
  ctx.fillStyle = ink; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "left"; ctx.textBaseline = "middle";
  ctx.fillText(scale.top, x0 + 18, top + 5);
  ctx.fillText("0", x0 + 18, top + h - 5);
}

// The cell (i, j) under the pointer, or -1 for a coordinate off the cells (on a label).
function cellAt(event) {
  const canvas = $("heatmap"), g = canvas.geometry;
  const rect = canvas.getBoundingClientRect();
  const k = canvas.cssWidth / rect.width;  // 1: the canvas is shown as drawn
  const at = (v, start) => { const c = Math.floor((v * k - start) / g.cell); return c >= 0 && c < g.n ? c : -1; };
  return { i: at(event.clientY - rect.top, g.top), j: at(event.clientX - rect.left, g.left) };
}

function cellText(i, j) {
  const g = $("heatmap").geometry;
  return `α′(${i + 1} “${g.labels[i]}” → ${j + 1} “${g.labels[j]}”) = ${g.w[i][j].toFixed(4)}`;
}

function readCell(event) {
  if (!$("heatmap").geometry) return;
  const { i, j } = cellAt(event);
  $("readout").textContent = i < 0 || j < 0 ? "" : cellText(i, j);
}

// A click on a cell or a row's label pins the row's (query) word; on a column's label, the key.
function clickCell(event) {
  if (!$("heatmap").geometry) return;
  const { i, j } = cellAt(event);
  if (i >= 0) togglePin({ side: "query", index: i });
  else if (j >= 0) togglePin({ side: "key", index: j });
}

// The keyboard on the heatmap: arrows move a cursor over the cells (read out), Enter or Space pins
// the row's word, + and − zoom, 0 fits the map to the page again.
function heatmapKey(event) {
  const g = $("heatmap").geometry;
  if (!g) return;
  const c = state.cursor || { i: 0, j: 0 };
  const step = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[event.key];
  const clamp = (v) => Math.min(Math.max(v, 0), g.n - 1);
  if (step) {
    state.cursor = { i: clamp(c.i + step[0]), j: clamp(c.j + step[1]) };
    drawHead();
    showCursor();
  } else if (event.key === "Enter" || event.key === " ") {
    togglePin({ side: "query", index: c.i });
  } else if (event.key === "+" || event.key === "=") zoom(1);
  else if (event.key === "-" || event.key === "−") zoom(-1);
  else if (event.key === "0") zoom(0);
  else return;
  event.preventDefault();
}

// Reads the cursor's cell out and scrolls the heatmap's box to it.
function showCursor() {
  const g = $("heatmap").geometry, c = state.cursor, box = $("heatmap-box");
  if (!g || !c) return;
  $("readout").textContent = cellText(c.i, c.j);
  const x = g.left + c.j * g.cell, y = g.top + c.i * g.cell;
  if (x < box.scrollLeft) box.scrollLeft = x - g.left;
  if (x + g.cell > box.scrollLeft + box.clientWidth) box.scrollLeft = x + g.cell - box.clientWidth;
  if (y < box.scrollTop) box.scrollTop = y - g.top;
  if (y + g.cell > box.scrollTop + box.clientHeight) box.scrollTop = y + g.cell - box.clientHeight;
}

// One step in or out through ZOOM_CELLS (direction 1 or -1), or back to fit (0).
function zoom(direction) {
  const now = $("heatmap").geometry ? $("heatmap").geometry.cell : ZOOM_CELLS[0];
  if (direction > 0) state.zoom = ZOOM_CELLS.find((c) => c > now) || ZOOM_CELLS[ZOOM_CELLS.length - 1];
  else if (direction < 0) state.zoom = [...ZOOM_CELLS].reverse().find((c) => c < now) || ZOOM_CELLS[0];
  else state.zoom = 0;
  drawHead();
  if (state.cursor) showCursor();
}

// -- the line view: several heads overlaid, top-k / threshold per query ----------------------------
function renderToggles() {
  const box = $("head-toggles");
  box.replaceChildren();
  for (let h = 0; h < state.data.heads; h++) {
    const label = document.createElement("label");
    label.className = "toggle";
    label.style.setProperty("--head", headColour(h));
    const box1 = document.createElement("input");
    box1.type = "checkbox"; box1.value = String(h); box1.checked = state.overlay.has(h);
    box1.setAttribute("aria-label", `draw head ${h + 1}`);
    box1.addEventListener("change", () => {
      if (box1.checked) state.overlay.add(h); else state.overlay.delete(h);
      renderHead(); writeUrl();
    });
    label.append(box1, ` head ${h + 1}`);
    box.appendChild(label);
  }
}

function svgElement(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// The keys j that query i links to: its top k (0 = all) of at least the threshold.
function keptKeys(row) {
  const k = Number($("topk").value);
  const threshold = Number($("threshold").value) || 0;
  const order = row.map((v, j) => j).sort((a, b) => row[b] - row[a]);
  return (k > 0 ? order.slice(0, k) : order).filter((j) => row[j] >= threshold);
}

const MEASURE = document.createElement("canvas").getContext("2d");

// The line view: query words right-aligned at xLeft, keys left-aligned at xRight, their tags on the
// outside when there is room. It is as wide as its box allows, up to a gap of 160 px + 4 px a word
// between the columns, so a long sentence's links do not become a criss-cross. The words are built
// once per drawing; following a token only redraws the links (drawLinks), so the word under the
// pointer or the keyboard focus stays the same element.
function drawLines() {
  const svg = $("lines");
  const d = state.data, n = d.tokens.length, labels = state.labels;
  const small = n > 30, row = small ? 18 : 24, fontPx = small ? 11 : 13, pad = 34;
  MEASURE.font = `${fontPx}px system-ui, sans-serif`;
  const measure = (s) => MEASURE.measureText(s).width * 1.1 + 2;  // a margin for the page's own font
  const wordW = Math.max(...labels.map(measure)), tagW = d.tags.length ? Math.max(...d.tags.map(measure)) : 0;
  const room = Math.max(240, $("lines-figure").clientWidth - 2);
  let tags = tagW > 0, xLeft = 8 + wordW + (tags ? tagW + 12 : 0);
  if (tags && room - 2 * xLeft < 160) { tags = false; xLeft = 8 + wordW; }  // narrow: the chips show the tags
  const width = Math.floor(Math.min(room, 2 * xLeft + Math.min(420, 160 + 4 * n)));
  const xRight = width - xLeft;
  const height = pad + 12 + n * row;
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.classList.toggle("small", small);
  svg.replaceChildren();
  const y = (i) => pad + (i + 0.5) * row;
  svg.layout = { y, xLeft, xRight };
  svg.appendChild(svgElement("g", { class: "links" }));
  svg.appendChild(svgElement("text", { x: xLeft, y: 16, "text-anchor": "end", class: "tag" }, "query i"));
  svg.appendChild(svgElement("text", { x: xRight, y: 16, "text-anchor": "start", class: "tag" }, "key j"));
  for (const side of ["query", "key"]) drawLineLabels(svg, side, y, { xLeft, xRight, width, tags });
  drawLinks();
}

// The links of every head drawn, of the followed token alone when there is one; marks its word.
function drawLinks() {
  const svg = $("lines"), layout = svg.layout;
  if (!layout) return;
  const { y, xLeft, xRight } = layout, n = state.data.tokens.length, f = state.focus;
  const box = svg.querySelector("g.links");
  box.replaceChildren();
  const heads = [...state.overlay].sort((a, b) => a - b);
  heads.forEach((h, k) => {
    const w = headWeights(state.data, state.layer, h);
    const scale = colourScale(w, state.scale);
    const shift = (k - (heads.length - 1) / 2) * 2;  // heads side by side, not on top of each other
    const links = svgElement("g", { stroke: headColour(h), "stroke-width": 2.5, "stroke-linecap": "round", "data-head": h });
    for (let i = 0; i < n; i++) {
      for (const j of keptKeys(w[i])) {
        if (f && ((f.side === "query" && f.index !== i) || (f.side === "key" && f.index !== j))) continue;
        links.appendChild(svgElement("line", {
          x1: xLeft + 6, y1: y(i) + shift, x2: xRight - 6, y2: y(j) + shift,
          "stroke-opacity": (0.15 + 0.85 * Math.min(scale.t(i, j), 1)).toFixed(3),
        }));
      }
    }
    box.appendChild(links);
  });
  svg.querySelectorAll("text.word").forEach((label) => {
    const token = { side: label.dataset.side, index: Number(label.dataset.index) };
    label.classList.toggle("focus", f !== null && sameToken(f, token));
    label.classList.toggle("pinned", state.pin !== null && sameToken(state.pin, token));
    if (state.pin) label.setAttribute("tabindex", sameToken(state.pin, token) ? "0" : "-1");  // Tab leads to the pin
  });
}

function drawLineLabels(svg, side, y, { xLeft, xRight, width, tags }) {
  const isLeft = side === "query";
  const stop = state.pin || { side: "query", index: 0 };  // the one word of the line view in the Tab order
  state.labels.forEach((t, i) => {
    const token = { side, index: i };
    const label = svgElement("text", {
      x: isLeft ? xLeft : xRight, y: y(i), "text-anchor": isLeft ? "end" : "start",
      "dominant-baseline": "middle", class: "word", "data-side": side, "data-index": i,
      tabindex: sameToken(stop, token) ? 0 : -1,
      role: "button", "aria-label": `${side} ${i + 1} ${t}`,
    }, t);
    label.addEventListener("mouseenter", () => setHover(token));
    label.addEventListener("mouseleave", () => setHover(null));
    label.addEventListener("focus", () => setHover(token));
    label.addEventListener("blur", () => setHover(null));
    label.addEventListener("click", () => togglePin(token));
    label.addEventListener("keydown", (e) => lineKey(e, side, i, token));
    svg.appendChild(label);
    if (tags) {
      svg.appendChild(svgElement("text", {
        x: isLeft ? 8 : width - 8, y: y(i), "text-anchor": isLeft ? "start" : "end",
        "dominant-baseline": "middle", class: "tag",
      }, state.data.tags[i] || ""));
    }
  });
}

// Up and down walk a column of the line view, left and right cross to the other column.
function lineKey(event, side, i, token) {
  const other = { ArrowLeft: "query", ArrowRight: "key" }[event.key];
  if (!other) { walk(event, `#lines text.word[data-side='${side}']`, i, token); return; }
  event.preventDefault();
  const all = [...$("lines").querySelectorAll("text.word")];
  all.forEach((el) => el.setAttribute("tabindex", "-1"));
  const target = all.find((el) => el.dataset.side === other && Number(el.dataset.index) === i);
  target.setAttribute("tabindex", "0");
  target.focus();
}

// What the followed token attends to and what attends to it, in each head drawn. Its box keeps a
// fixed height (a line per head drawn), so pointing at a word never moves the views below it.
function describeFocus() {
  const box = $("hover-info");
  box.style.setProperty("--rows", String(Math.max(1, state.overlay.size)));
  box.replaceChildren();
  const f = state.focus;
  if (!f) {
    box.textContent = "Point at a word (click it to pin it) to see what it attends to and what attends to it.";
    return;
  }
  const labels = state.labels;
  const top3 = (pairs) => pairs.sort((a, b) => b[1] - a[1]).slice(0, 3)
    .map(([j, v]) => `${labels[j]} ${v.toFixed(2)}`).join(", ");
  const title = document.createElement("b");
  title.className = "focus-title";
  title.textContent = `${f.index + 1} “${labels[f.index]}”` +
    (sameToken(f, state.pin) ? " (pinned: Escape or a second click releases it)" : "");
  box.appendChild(title);
  for (const h of [...state.overlay].sort((a, b) => a - b)) {
    const w = headWeights(state.data, state.layer, h);
    const line = document.createElement("span");
    line.className = "focus-line"; line.dataset.head = String(h);
    line.style.setProperty("--head", headColour(h));
    const to = document.createElement("span"), by = document.createElement("span");
    to.textContent = `head ${h + 1}: attends to ${top3(w[f.index].map((v, j) => [j, v]))}; `;
    by.textContent = `attended by ${top3(w.map((row, i) => [i, row[f.index]]))}`;
    by.className = "by";
    line.append(to, by);
    line.title = line.textContent;
    box.appendChild(line);
  }
}

// -- the model view: every layer x head ---------------------------------------------------------
function renderModel() {
  const box = $("thumbs");
  box.replaceChildren();
  const d = state.data, n = d.tokens.length;
  const cell = Math.max(2, Math.floor(110 / n));
  // with a head report (heads.js): every head in the chosen order, its numbers under it
  const order = typeof headOrder === "function" ? headOrder(d.layers, d.heads) : null;
  if (order) {
    const grid = document.createElement("div");
    grid.className = "thumb-grid";
    for (const [l, h] of order) grid.appendChild(thumbnail(l, h, cell, true));
    box.appendChild(grid);
    return;
  }
  for (let l = 0; l < d.layers; l++) {
    const row = document.createElement("div");
    row.className = "thumb-row";
    row.style.gridTemplateColumns = `4.2rem repeat(${d.heads}, minmax(0, ${n * cell + 8}px))`;
    const name = document.createElement("span");
    name.className = "thumb-layer"; name.textContent = `layer ${l + 1}`;
    row.appendChild(name);
    for (let h = 0; h < d.heads; h++) row.appendChild(thumbnail(l, h, cell));
    box.appendChild(row);
  }
}

function thumbnail(l, h, cell, facts = false) {
  const w = headWeights(state.data, l, h), n = w.length;
  const canvas = document.createElement("canvas");
  canvas.className = "thumb" + (l === state.layer && h === state.head ? " current" : "");
  Object.assign(canvas.dataset, { layer: String(l), head: String(h) });
  canvas.title = `layer ${l + 1}, head ${h + 1}: click to look at it`;
  canvas.setAttribute("role", "button");
  canvas.setAttribute("aria-label", `layer ${l + 1} head ${h + 1}`);
  const ctx = canvas.getContext("2d");
  sizeCanvas(canvas, ctx, n * cell, n * cell);
  const scale = colourScale(w, state.scale);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      ctx.fillStyle = colour(scale.t(i, j));
      ctx.fillRect(j * cell, i * cell, cell, cell);
    }
  }
  canvas.tabIndex = 0;
  const focusHead = () => {
    state.layer = l; state.head = h; state.view = "head"; state.overlay = new Set([h]);
    $("layer").value = String(l); $("head").value = String(h);
    renderToggles();
    render();
  };
  canvas.addEventListener("click", focusHead);
  canvas.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); focusHead(); } });
  const figure = document.createElement("figure");
  figure.className = "thumb-cell";
  const caption = document.createElement("figcaption");
  caption.textContent = facts ? `layer ${l + 1}, head ${h + 1}` : `head ${h + 1}`;
  const numbers = facts ? headFacts(l, h) : null;
  if (numbers) caption.appendChild(numbers);
  figure.append(canvas, caption);
  return figure;
}

// -- the seed's steps for one head and one query word: static/steps.js ----------------------------

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// -- two sentences side by side --------------------------------------------------------------------
async function renderCompare() {
  const text = $("sentence2").value.trim();
  if (!text) return;
  if (!state.other || state.other.text !== text) {
    try {
      state.other = { text, data: await api("/api/attention", { text }) };
      showError("");
    } catch (err) {
      state.other = null;
      showError(`second sentence: ${err.message}`);
    }
  }
  const panes = [[state.data, "a"], [state.other && state.other.data, "b"]];
  for (const [data, side] of panes) {
    const canvas = $(`heatmap-${side}`);
    canvas.hidden = !data;
    if (!data) continue;
    drawHeatmap(canvas, data, headWeights(data, state.layer, state.head), { maxCell: 32, area: 300 });
    canvas.dataset.layer = String(state.layer); canvas.dataset.head = String(state.head);
    $(`caption-${side}`).textContent = `“${data.tokens.join(" ")}”: ` +
      (data.no_tags ? data.tokens : data.tokens.map((t, i) => `${t}/${data.tags[i]}`)).join(" ");
  }
}

// -- export -------------------------------------------------------------------------------------------
// A picture of the current view: one canvas, or several drawn side by side on a new one.
function viewCanvas() {
  if (state.view === "head") return $("heatmap");
  if (state.view === "steps") return $("steps-chart");
  const parts = state.view === "model" ? [...document.querySelectorAll("#thumbs canvas")]
    : [$("heatmap-a"), $("heatmap-b")].filter((c) => !c.hidden);
  const perRow = state.view === "model" ? state.data.heads : parts.length;
  const gap = 10;
  const cw = Math.max(...parts.map((c) => c.width)), ch = Math.max(...parts.map((c) => c.height));
  const out = document.createElement("canvas");
  out.width = perRow * (cw + gap) + gap;
  out.height = Math.ceil(parts.length / perRow) * (ch + gap) + gap;
  const ctx = out.getContext("2d");
  ctx.fillStyle = "white"; ctx.fillRect(0, 0, out.width, out.height);
  parts.forEach((c, k) => ctx.drawImage(c, gap + (k % perRow) * (cw + gap), gap + Math.floor(k / perRow) * (ch + gap)));
  return out;
}

function viewJson() {
  const d = state.data, base = { tokens: d.tokens, tags: d.tags, normalize: d.normalize };
  const at = { layer: state.layer + 1, head: state.head + 1 };
  if (state.view === "model") return { ...base, layers: d.layers, heads: d.heads, weights: d.weights };
  if (state.view === "steps") return { ...at, query: state.query + 1, steps: state.steps.get(`${state.layer},${state.head}`) };
  if (state.view === "compare" && state.other) {
    const o = state.other.data;
    return { ...at, sentences: [d, o].map((x) => ({ tokens: x.tokens, tags: x.tags, weights: headWeights(x, state.layer, state.head) })) };
  }
  return { ...base, ...at, weights: headWeights(d, state.layer, state.head) };
}

function exportName(ext) { return `attention-${state.view}-layer${state.layer + 1}-head${state.head + 1}.${ext}`; }

function exportPng() {
  const link = $("export-png");
  link.href = viewCanvas().toDataURL("image/png");
  link.download = exportName("png");
}

function exportJson() {
  const link = $("export-json");
  link.href = "data:application/json;charset=utf-8," + encodeURIComponent(JSON.stringify(viewJson(), null, 1));
  link.download = exportName("json");
}

// -- the URL holds the view ----------------------------------------------------------------------------
function writeUrl() {
  const p = new URLSearchParams();
  const text = $("sentence").value.trim();
  if (text) p.set("text", text);
  p.set("view", state.view); p.set("layer", state.layer + 1); p.set("head", state.head + 1);
  p.set("scale", state.scale);
  if (state.view === "steps") p.set("query", state.query + 1);
  if (state.view === "compare") p.set("compare", $("sentence2").value.trim());
  if (state.view === "head") {
    p.set("heads", [...state.overlay].sort((a, b) => a - b).map((h) => h + 1).join(","));
    p.set("top", $("topk").value); p.set("min", $("threshold").value);
  }
  if (state.pin) p.set("pin", `${state.pin.side === "key" ? "k" : "q"}${state.pin.index + 1}`);
  try { history.replaceState(null, "", `#${p.toString()}`); } catch (err) { /* a page without a URL of its own */ }
}

function readUrl(hash) {
  const p = new URLSearchParams(hash.replace(/^#/, ""));
  const number = (name) => Math.max(0, (parseInt(p.get(name), 10) || 1) - 1);
  if (p.has("text")) $("sentence").value = p.get("text");
  if (p.has("compare")) $("sentence2").value = p.get("compare");
  state.view = VIEWS.includes(p.get("view")) ? p.get("view") : "head";
  state.scale = SCALES.includes(p.get("scale")) ? p.get("scale") : "row";
  $("scale").value = state.scale;
  state.layer = number("layer"); state.head = number("head"); state.query = number("query");
  const heads = (p.get("heads") || "").split(",").map((h) => parseInt(h, 10) - 1).filter((h) => h >= 0);
  state.overlay = new Set(heads.length ? heads : [state.head]);
  if ([...$("topk").options].some((o) => o.value === p.get("top"))) $("topk").value = p.get("top");
  const min = Number(p.get("min"));
  if (p.has("min") && min >= 0 && min <= 1) $("threshold").value = String(min);
  const pin = /^([qk])([1-9]\d*)$/.exec(p.get("pin") || "");  // q3: the 3rd word as a query, k3: as a key
  state.pin = pin ? { side: pin[1] === "k" ? "key" : "query", index: Number(pin[2]) - 1 } : null;
  return p.has("text");
}

// -- wiring ----------------------------------------------------------------------------------------------
function wire() {
  $("sentence-form").addEventListener("submit", submit);
  $("compare-form").addEventListener("submit", (e) => { e.preventDefault(); render(); });
  $("layer").addEventListener("change", () => { state.layer = Number($("layer").value); render(); });
  $("head").addEventListener("change", () => {
    state.head = Number($("head").value); state.overlay = new Set([state.head]);
    renderToggles(); render();
  });
  $("query").addEventListener("change", () => { state.query = Number($("query").value); render(); });
  $("scale").addEventListener("change", () => { state.scale = $("scale").value; render(); });
  for (const id of ["topk", "threshold"]) {
    for (const kind of ["input", "change"]) $(id).addEventListener(kind, () => { renderHead(); writeUrl(); });
  }
  document.querySelectorAll("#view-tabs button").forEach((b) => {
    b.addEventListener("click", () => { state.view = b.dataset.view; state.hover = null; state.cursor = null; render(); });
  });
  const map = $("heatmap");
  map.addEventListener("mousemove", readCell);
  map.addEventListener("mouseleave", () => { $("readout").textContent = ""; });
  map.addEventListener("click", clickCell);
  $("lines").addEventListener("mouseleave", () => setHover(null));
  map.addEventListener("keydown", heatmapKey);
  map.addEventListener("focus", () => {
    state.cursor = state.cursor || { i: state.pin && state.pin.side === "query" ? state.pin.index : 0, j: 0 };
    drawHead(); showCursor();
  });
  map.addEventListener("blur", () => { state.cursor = null; $("readout").textContent = ""; if (state.data) drawHead(); });
  $("zoom-in").addEventListener("click", () => zoom(1));
  $("zoom-out").addEventListener("click", () => zoom(-1));
  $("zoom-fit").addEventListener("click", () => zoom(0));
  // a pointer that left the words by a way no mouseleave reported (the page redrawn under it) lets go
  document.addEventListener("mousemove", (e) => {
    if (state.hover && !(e.target.closest && e.target.closest("#tagged .token, #lines text.word"))) setHover(null);
  });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && state.pin) togglePin(null); });
  let pending = 0;  // the line view and a fitted heatmap follow the window's width
  window.addEventListener("resize", () => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => { if (state.data && !state.data.no_attention && state.view === "head") renderHead(); });
  });
  $("theme").addEventListener("change", () => setTheme($("theme").value, true));
  const dark = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  if (dark) dark.addEventListener("change", () => { if (storedTheme() === "auto") setTheme("auto", false); });
  $("export-png").addEventListener("click", exportPng);
  $("export-json").addEventListener("click", exportJson);
  window.addEventListener("hashchange", () => { if (readUrl(location.hash)) submit(); });
}

async function start() {
  setTheme(storedTheme(), false);
  wire();
  await loadHealth();
  const embed = window.ATTNLAB_EMBED;
  if (readUrl(location.hash || (embed ? embed.hash : ""))) await submit();
}

start();
