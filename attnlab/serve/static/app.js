// attnlab explorer: asks the JSON API for the tags and attention weights of a sentence and
// draws them in five views: one head (heatmap + lines, several heads overlaid), the whole
// model (every layer x head), the seed's steps of one head with their numbers (steps.js), two
// sentences (or two models) side by side with their difference, and what if one word were
// another (whatif.js). weights[l][h][i][j] = alpha'_(i,j) of head h in layer l: query
// token i, key token j (numbered from 0 here, from 1 on the page and in the URL).
// The view lives in the URL (#text=...&layer=..&head=..&view=..&top=..&min=..&pin=q3), so a link
// reopens it. Embedded in a notebook (attnlab.viz.show), window.ATTNLAB_EMBED holds the API's answers.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const VIEWS = ["head", "model", "steps", "compare", "whatif", "why"];
const SCALES = ["row", "matrix", "fixed"];

const state = {
  data: null,          // the answer of /api/attention for the sentence
  text: "",            // ... which was this
  other: null,         // ... for the second sentence (compare view): {text, model, data}
  models: [],          // the server's models (/api/health); the first answers unless a request names another
  whatif: { position: 0, replacement: null, answer: null, all: false },  // replacement null: mask the word
  steps: new Map(),    // "layer,head" -> the answer of /api/steps
  layer: 0, head: 0, query: 0, view: "head", scale: "row",
  word: 0, tagLayer: "UPOS",  // the Why view (why.js): the word whose tag it explains, and the tag layer
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

// A signed value t in [-1, 1] on a scale symmetric around 0: blue below, white at 0, red above.
function diverging(t) {
  const a = Math.min(Math.abs(t), 1);
  const [r, g, b] = t < 0 ? [33, 102, 172] : [178, 24, 43];
  const mix = (c) => Math.round(255 + a * (c - 255));
  return `rgb(${mix(r)}, ${mix(g)}, ${mix(b)})`;
}

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
    throw new Error(`this page has no server: it was saved with ${savedSentences()} only; ` +
                    "call attnlab.viz.show with another sentence");
  }
  if (path === "/api/attention") return found.attention;
  if (path === "/api/whatif") {
    const w = found.whatif && body.mask ? found.whatif[String(body.position)] : null;
    if (!w || w.layer !== body.layer || w.head !== body.head) {
      const at = found.whatif && Object.values(found.whatif)[0];
      throw new Error("this page has no server: it holds each word masked" +
                      (at && at.before ? ` at layer ${at.layer + 1}, head ${at.head + 1}` : "") +
                      " only; call attnlab.viz.show with view=\"whatif\" and another layer or head");
    }
    return w;
  }
  return found.steps[`${body.layer},${body.head}`];
}

function savedSentences() {
  return Object.keys(window.ATTNLAB_EMBED.sentences).map((s) => `“${s}”`).join(" and ");
}

// In a notebook the page sits in an iframe: it tells the page around it how tall it is (when it
// changes, and when asked), so that the frame fits it (attnlab.viz.notebook listens).
function reportHeight() {
  if (!window.ATTNLAB_EMBED || window.parent === window) return;
  const send = () => window.parent.postMessage(
    { attnlab: "height", height: Math.ceil(document.documentElement.getBoundingClientRect().height) }, "*");
  new ResizeObserver(send).observe(document.documentElement);
  window.addEventListener("message", (e) => { if (e.source === window.parent && e.data && e.data.attnlab === "size?") send(); });
  send();
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
    state.models = health.models || [m];
    setupModels();
    if (m.no_tags) $("submit").textContent = "Attend";  // a checkpoint: nothing to tag
    const most = health.limits.max_tokens ? `; at most ${health.limits.max_tokens} tokens per sentence` : "";
    $("model-info").textContent = m.no_attention
      ? `model ${m.name}: tags only (no attention)${most}`
      : `model ${m.name}: ${m.layers} layers × ${m.heads} heads, ${m.normalize}` +
        (m.no_tags ? `; ${m.model_type} checkpoint: word pieces, no tags` : "") + most +
        (state.models.length > 1 ? `; compared with ${state.models.slice(1).map((o) => o.name).join(", ")}` : "") +
        (window.ATTNLAB_EMBED ? `; a saved page, no server: it holds ${savedSentences()}` : "");
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
  const embed = window.ATTNLAB_EMBED;
  if (embed && !embed.sentences[text] && state.data) {  // no server: say so, keep what is shown
    try { embedded("/api/attention", { text }); } catch (err) { showError(err.message); }
    return;
  }
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
  document.body.dataset.drawn = "";  // the view's name once it is drawn (a signal for timing and tests)
  document.querySelectorAll("#view-tabs button").forEach((b) => b.classList.toggle("active", b.dataset.view === state.view));
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== state.view;
  $("scale").parentElement.hidden = state.view === "whatif";  // differences have a scale of their own
  for (const id of ["controls", "legend-text"]) $(id).hidden = state.view === "why";  // heatmap settings
  const legend = colourScale(headWeights(state.data, state.layer, state.head), state.scale).text;
  $("legend-text").textContent = state.view === "model" && state.scale === "matrix"
    ? "colour: α′ from 0 to the largest α′ of each head (one scale per thumbnail)" : legend;
  try {
    if (state.view === "head") renderHead();
    else if (state.view === "model") renderModel();
    else if (state.view === "steps") await renderSteps();
    else if (state.view === "whatif") await renderWhatif();
    else if (state.view === "why") { if (window.renderWhy) await window.renderWhy(); }  // why.js, loaded after this file
    else await renderCompare();
  } catch (err) {
    showError(err.message);
  }
  document.body.dataset.drawn = state.view;
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

// -- two sentences (or two models) side by side, and their difference -------------------------------
// A grid of values with labelled rows and columns and a colour bar, drawn to fit `width` CSS
// pixels: the compare panes, their difference and the what-if map. Rows too thin for a label
// carry one every few rows (the read-out names each one). Remembers its geometry for pointing.
function drawGrid(canvas, { rows, cols, rowTags = [], fill, legend, width, maxCell = 32 }) {
  const ctx = canvas.getContext("2d");
  const font = "11px system-ui, sans-serif";
  ctx.font = font;
  const textWidth = (s) => ctx.measureText(s).width;
  const tagGap = rowTags.some(Boolean) ? Math.max(...rowTags.map((t) => textWidth(t || ""))) + 8 : 0;
  const left = Math.ceil(Math.max(...rows.map(textWidth)) + tagGap) + 12;
  const bar = 14 + 8 + Math.ceil(Math.max(...[legend.top, legend.bottom, legend.middle || ""].map(textWidth))) + 6;
  const cell = Math.max(4, Math.min(maxCell, Math.floor((width - left - bar - 12) / cols.length)));
  const every = Math.ceil(13 / cell);  // label every row when it is tall enough for 11 px text
  const upright = cols.every((t) => textWidth(t) <= cell * every - 3);
  const top = (upright ? 16 : Math.ceil(Math.max(...cols.filter((_, j) => j % every === 0).map(textWidth)))) + 12;
  const W = left + cols.length * cell + 8 + bar, H = top + rows.length * cell + 10;
  sizeCanvas(canvas, ctx, W, H);
  for (let i = 0; i < rows.length; i++) {
    for (let j = 0; j < cols.length; j++) {
      ctx.fillStyle = fill(i, j);
      ctx.fillRect(left + j * cell, top + i * cell, cell, cell);
    }
  }
  ctx.font = font; ctx.textBaseline = "middle"; ctx.textAlign = "right";
  rows.forEach((t, i) => {
    if (i % every) return;
    const y = top + (i + 0.5) * cell;
    ctx.fillStyle = "#2a6fb0"; ctx.fillText(rowTags[i] || "", left - 6, y);
    ctx.fillStyle = "#1d232a"; ctx.fillText(t, left - 6 - tagGap, y);
  });
  cols.forEach((t, j) => {
    if (j % every) return;
    ctx.save();
    ctx.translate(left + (j + 0.5) * cell, top - 6);
    if (upright) { ctx.textAlign = "center"; ctx.textBaseline = "alphabetic"; } else { ctx.rotate(-Math.PI / 2); ctx.textAlign = "left"; }
    ctx.fillText(t, 0, 0);
    ctx.restore();
  });
  const x0 = left + cols.length * cell + 8, h = rows.length * cell;
  for (let y = 0; y < h; y++) { ctx.fillStyle = legend.colour(1 - y / h); ctx.fillRect(x0, top + y, 14, 1); }
  ctx.fillStyle = "#1d232a"; ctx.textAlign = "left";
  ctx.fillText(legend.top, x0 + 18, top + 5);
  if (legend.middle) ctx.fillText(legend.middle, x0 + 18, top + h / 2);
  ctx.fillText(legend.bottom, x0 + 18, top + h - 5);
  canvas.style.width = `${Math.min(W, width)}px`;
  canvas.geometry = { left, top, cell, rows: rows.length, cols: cols.length };
}

// The (row, column) under the pointer on a grid drawn by drawGrid, or null.
function gridCell(canvas, event) {
  const g = canvas.geometry;
  if (!g) return null;
  const rect = canvas.getBoundingClientRect();
  const k = canvas.cssWidth / rect.width;  // shown smaller than drawn on a narrow page
  const j = Math.floor(((event.clientX - rect.left) * k - g.left) / g.cell);
  const i = Math.floor(((event.clientY - rect.top) * k - g.top) / g.cell);
  return i >= 0 && j >= 0 && i < g.rows && j < g.cols ? { i, j } : null;
}

// The colour of a difference d on a scale symmetric around 0 (red: more, blue: less).
function differenceLegend(top) {
  return { colour: (t) => diverging(2 * t - 1), top: `+${top.toPrecision(2)}`, middle: "0", bottom: `−${top.toPrecision(2)}` };
}

function modelNamed(name) { return state.models.find((m) => m.name === name) || state.models[0]; }

// The compare view's model select: the server's models, B the second unless the URL names one.
function setupModels(wanted) {
  const select = $("model2");
  if (!state.models.length) return;
  if (select.options.length !== state.models.length) {
    select.replaceChildren(...state.models.map((m) => new Option(m.name, m.name)));
    $("model2-label").hidden = state.models.length < 2;
    if (state.models.length > 1) {  // an empty box compares the models on the first sentence
      $("sentence2").value = "";
      $("sentence2").placeholder = "empty: the first sentence again";
    }
  }
  select.value = state.models.some((m) => m.name === wanted) ? wanted : state.models[Math.min(1, state.models.length - 1)].name;
}

// The layer and head a pane of `data` shows: the chosen ones, or its last when it has fewer.
function paneHead(data) {
  return { layer: Math.min(state.layer, data.layers - 1), head: Math.min(state.head, data.heads - 1) };
}

async function renderCompare() {
  const model = $("model2").value || (state.models[0] && state.models[0].name);
  const twoModels = state.models.length > 1 && model !== state.models[0].name;
  const text = $("sentence2").value.trim() || (twoModels ? state.text : "");  // empty: model against model
  if (!text) {  // nothing to compare with: no pane, no message left from an earlier sentence
    state.other = null;
    if ($("error").textContent.startsWith("second sentence")) showError("");
  } else if (!state.other || state.other.text !== text || state.other.model !== model) {
    try {
      const body = { text };
      if (state.models.length > 1 && model !== state.models[0].name) body.model = model;
      state.other = { text, model, data: await api("/api/attention", body) };
      showError("");
    } catch (err) {
      state.other = null;
      showError(`second sentence: ${err.message}`);
    }
  }
  $("compare-hint").textContent = text ? "" : window.ATTNLAB_EMBED
    ? `This page was saved without a second sentence: give attnlab.viz.show a compare= sentence to see one here.`
    : "Type a second sentence to compare with.";
  const other = state.other && !state.other.data.no_attention ? state.other.data : null;
  if (state.other && state.other.data.no_attention) showError(`second sentence: ${state.other.data.no_attention}`);
  const wide = $("compare-panes").clientWidth;
  const width = wide >= 640 ? Math.floor((wide - 24) / 2) : wide;  // two abreast unless the page is narrow
  const named = state.models.length > 1;
  const panes = [[state.data, "a", named ? state.models[0].name : ""], [other, "b", named ? model : ""]];
  for (const [data, side, name] of panes) {
    const canvas = $(`heatmap-${side}`);
    canvas.parentElement.hidden = !data;
    if (!data) { $(`caption-${side}`).textContent = ""; canvas.geometry = null; continue; }
    const { layer, head } = paneHead(data);
    const w = headWeights(data, layer, head), scale = colourScale(w, state.scale);
    drawGrid(canvas, {
      rows: data.tokens, cols: data.tokens, rowTags: data.no_tags ? [] : data.tags, width,
      fill: (i, j) => colour(scale.t(i, j)), legend: { colour, top: scale.top, bottom: "0" },
    });
    canvas.parentElement.style.width = `${width}px`;
    canvas.dataset.layer = String(layer); canvas.dataset.head = String(head);
    canvas.w = w; canvas.tokens = data.tokens;
    $(`caption-${side}`).textContent = `${name ? `model ${name}, ` : ""}layer ${layer + 1}, head ${head + 1}: ` +
      (data.no_tags ? data.tokens : data.tokens.map((t, i) => `${t}/${data.tags[i]}`)).join(" ");
  }
  drawDifference(other, width);
  $("compare-readout").textContent = "";
}

// Pane B minus pane A, word by word: both sentences' first min(n_A, n_B) tokens, by position.
function drawDifference(other, width) {
  const canvas = $("heatmap-diff");
  canvas.parentElement.hidden = !other;
  if (!other) { canvas.geometry = null; canvas.diff = null; return; }
  const a = $("heatmap-a"), b = $("heatmap-b");
  const n = Math.min(a.tokens.length, b.tokens.length);
  const diff = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => b.w[i][j] - a.w[i][j]));
  const top = Math.max(1e-6, ...diff.map((row) => Math.max(...row.map(Math.abs))));
  const label = (k) => (a.tokens[k] === b.tokens[k] ? a.tokens[k] : `${a.tokens[k]}|${b.tokens[k]}`);
  const labels = Array.from({ length: n }, (_, k) => label(k));
  drawGrid(canvas, { rows: labels, cols: labels, width, fill: (i, j) => diverging(diff[i][j] / top), legend: differenceLegend(top) });
  canvas.parentElement.style.width = `${width}px`;
  canvas.diff = diff;
  const same = a.tokens.length === b.tokens.length;
  $("caption-diff").textContent = `Difference B − A of α′ (red: B attends more, blue: A more; largest ${top.toFixed(3)}), ` +
    (same && a.tokens.every((t, k) => t === b.tokens[k]) ? "token by token."
      : `by position: token k of A beside token k of B (“a|b” where they differ)${same ? "" : `, the first ${n} of each`}.`);
}

// What the pointer is on in any of the compare maps: the same (query, key) in A, B and B − A.
function readCompare(event) {
  const at = gridCell(event.currentTarget, event);
  const out = $("compare-readout");
  if (!at) { out.textContent = ""; return; }
  const { i, j } = at;
  const part = (side) => {
    const c = $(`heatmap-${side}`);
    if (!c.tokens || i >= c.tokens.length || j >= c.tokens.length) return `${side.toUpperCase()}: no such token`;
    return `${side.toUpperCase()} α′(${i + 1} “${c.tokens[i]}” → ${j + 1} “${c.tokens[j]}”) = ${c.w[i][j].toFixed(4)}`;
  };
  const diff = $("heatmap-diff").diff;
  const d = diff && i < diff.length && j < diff.length ? `; B − A = ${diff[i][j] >= 0 ? "+" : "−"}${Math.abs(diff[i][j]).toFixed(4)}` : "";
  out.textContent = `${part("a")}; ${part("b")}${d}`;
}

// -- export -------------------------------------------------------------------------------------------
// The pictures of the current view, each with its caption: what an exported PNG shows.
function viewPictures() {
  const at = `layer ${state.layer + 1}, head ${state.head + 1}`;
  if (state.view === "head") return [{ canvas: $("heatmap"), caption: `heatmap, ${at}` }, { canvas: linesPicture(), caption: "lines: query i → key j" }];
  if (state.view === "steps") return [...document.querySelectorAll("#steps-panel canvas")].map((c) => ({ canvas: c, caption: c.getAttribute("aria-label") || "" }));
  if (state.view === "model") {
    return [...document.querySelectorAll("#thumbs canvas")].map((c) =>
      ({ canvas: c, caption: `layer ${Number(c.dataset.layer) + 1}, head ${Number(c.dataset.head) + 1}`, grid: state.data.heads }));
  }
  if (state.view === "whatif") return [{ canvas: $("whatif-map"), caption: $("whatif-caption").textContent }].filter((p) => p.canvas.geometry);
  return ["a", "b", "diff"].filter((s) => !$(`heatmap-${s}`).parentElement.hidden)
    .map((s) => ({ canvas: $(`heatmap-${s}`), caption: $(`caption-${s}`).textContent }));
}

// The line view (an SVG) drawn on a canvas, element by element, with the colours the page gives them.
function linesPicture() {
  const svg = $("lines");
  const W = Number(svg.getAttribute("width")), H = Number(svg.getAttribute("height"));
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d");
  sizeCanvas(canvas, ctx, W, H);
  for (const line of svg.querySelectorAll("line")) {
    const style = getComputedStyle(line);
    ctx.strokeStyle = style.stroke; ctx.globalAlpha = Number(style.strokeOpacity);
    ctx.lineWidth = parseFloat(style.strokeWidth); ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(+line.getAttribute("x1"), +line.getAttribute("y1")); ctx.lineTo(+line.getAttribute("x2"), +line.getAttribute("y2"));
    ctx.stroke();
  }
  ctx.globalAlpha = 1; ctx.textBaseline = "middle";
  for (const text of svg.querySelectorAll("text")) {
    const style = getComputedStyle(text);
    ctx.fillStyle = style.fill; ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    ctx.textAlign = { end: "right", middle: "center" }[text.getAttribute("text-anchor")] || "left";
    ctx.fillText(text.textContent, +text.getAttribute("x"), +text.getAttribute("y"));
  }
  return canvas;
}

// What an exported picture says above and below the view: the sentence, the view and the colour scale.
function exportLabels() {
  const at = `layer ${state.layer + 1}, head ${state.head + 1}`;
  const model = state.models.length ? ` (model ${state.models[0].name})` : "";
  const view = {
    head: `one head: ${at}`, model: "the model: every layer (rows) and head (columns)",
    steps: `steps of ${at}, query word ${state.query + 1} “${state.data.tokens[state.query]}”`,
    compare: `compare, ${at}: “${state.text}” with “${state.other ? state.other.text : ""}”` +
             (state.other && state.models.length > 1 ? ` on model ${state.other.model}` : ""),
    whatif: $("whatif-note") ? `what if: ${$("whatif-note").textContent}` : "what if",
  }[state.view];
  const scale = state.view === "whatif" ? "colour: α′ after minus α′ before (blue less, red more, white no change)"
    : state.view === "compare" ? `${$("legend-text").textContent}; the difference: blue less, red more in B`
    : $("legend-text").textContent;
  return { title: `“${state.text}”${model}`, lines: [`attnlab explorer, ${view}`, scale] };
}

// One canvas: the title and labels above the view's pictures (laid out in rows), each with its caption.
function viewCanvas() {
  const pictures = viewPictures();
  const { title, lines } = exportLabels();
  const dpr = window.devicePixelRatio || 1, gap = 16, captionH = 3 * 14 + 6;  // captions wrap to 3 lines
  const size = (c) => [c.width / dpr, c.height / dpr];
  const perRow = pictures.length && pictures[0].grid ? pictures[0].grid : Math.max(1, pictures.length);
  const cw = Math.max(0, ...pictures.map((p) => size(p.canvas)[0])), ch = Math.max(0, ...pictures.map((p) => size(p.canvas)[1]));
  const out = document.createElement("canvas");
  const ctx = out.getContext("2d");
  ctx.font = "bold 15px system-ui, sans-serif";
  const textW = Math.max(ctx.measureText(title).width, ...lines.map((l) => (ctx.font = "12px system-ui, sans-serif", ctx.measureText(l).width)));
  const head = 22 + 18 * lines.length + 8;
  const W = Math.ceil(Math.max(gap + perRow * (cw + gap), textW + 2 * gap));
  const H = Math.ceil(head + Math.ceil(pictures.length / perRow) * (ch + captionH + gap) + gap);
  sizeCanvas(out, ctx, W, H);
  ctx.fillStyle = "#1d232a"; ctx.textBaseline = "top"; ctx.textAlign = "left";
  ctx.font = "bold 15px system-ui, sans-serif"; ctx.fillText(title, gap, 8);
  ctx.font = "12px system-ui, sans-serif";
  lines.forEach((l, k) => ctx.fillText(l, gap, 30 + 18 * k));
  pictures.forEach((p, k) => {
    const [w, h] = size(p.canvas);
    const x = gap + (k % perRow) * (cw + gap), y = head + Math.floor(k / perRow) * (ch + captionH + gap);
    ctx.drawImage(p.canvas, x, y, w, h);
    ctx.fillStyle = "#5b6570"; ctx.font = "11px system-ui, sans-serif";
    wrapText(ctx, p.caption, Math.max(cw, 160)).forEach((line, k) => ctx.fillText(line, x, y + h + 4 + 14 * k));
  });
  out.labels = [title, ...lines, ...pictures.map((p) => p.caption)];
  return out;
}

// `text` cut into at most `most` lines no wider than `width` (the last one ends in … when cut short).
function wrapText(ctx, text, width, most = 3) {
  const lines = [];
  let line = "";
  for (const word of text.split(" ")) {
    const next = line ? `${line} ${word}` : word;
    if (line && ctx.measureText(next).width > width) { lines.push(line); line = word; } else line = next;
  }
  if (line) lines.push(line);
  if (lines.length > most) lines.splice(most - 1, lines.length, `${lines[most - 1]}…`);
  return lines;
}

function viewJson() {
  const d = state.data, base = { tokens: d.tokens, tags: d.tags, normalize: d.normalize };
  const at = { layer: state.layer + 1, head: state.head + 1 };
  if (state.view === "model") return { ...base, layers: d.layers, heads: d.heads, weights: d.weights };
  if (state.view === "steps") return { ...at, query: state.query + 1, steps: state.steps.get(`${state.layer},${state.head}`) };
  if (state.view === "whatif") return state.whatif.answer;
  if (state.view === "compare" && state.other) {
    const sides = [[d, state.models[0]], [state.other.data, modelNamed(state.other.model)]];
    return { ...at, sentences: sides.map(([x, m]) => ({ tokens: x.tokens, tags: x.tags, model: m ? m.name : undefined,
                                                         weights: headWeights(x, paneHead(x).layer, paneHead(x).head) })),
             difference: $("heatmap-diff").diff };
  }
  return { ...base, ...at, weights: headWeights(d, state.layer, state.head) };
}

function exportName(ext) {
  const at = `layer${state.layer + 1}-head${state.head + 1}`;
  if (state.view === "model") return `attention-model.${ext}`;  // every layer and head
  if (state.view === "whatif") return `attention-whatif-${at}-word${state.whatif.position + 1}.${ext}`;
  return `attention-${state.view}-${at}.${ext}`;
}

function exportPng() {
  const link = $("export-png");
  const canvas = viewCanvas();
  link.href = canvas.toDataURL("image/png");
  link.download = exportName("png");
  link.dataset.labels = canvas.labels.join("\n");
}

function exportJson() {
  const link = $("export-json");
  link.href = "data:application/json;charset=utf-8," + encodeURIComponent(JSON.stringify(viewJson(), null, 1));
  link.download = exportName("json");
}

// A link activates on Enter (it has an href from the start); Space does the same, as on a button.
function activateOnSpace(link) {
  link.addEventListener("keydown", (e) => { if (e.key === " ") { e.preventDefault(); link.click(); } });
}

// -- the URL holds the view ----------------------------------------------------------------------------
function writeUrl() {
  const p = new URLSearchParams();
  const text = $("sentence").value.trim();
  if (text) p.set("text", text);
  p.set("view", state.view); p.set("layer", state.layer + 1); p.set("head", state.head + 1);
  p.set("scale", state.scale);
  if (state.view === "steps") p.set("query", state.query + 1);
  if (state.view === "compare") {
    p.set("compare", $("sentence2").value.trim());
    if (state.models.length > 1) p.set("model2", $("model2").value);
  }
  if (state.view === "whatif") {
    p.set("word", state.whatif.position + 1);
    if (state.whatif.replacement !== null) p.set("replace", state.whatif.replacement);
  }
  if (state.view === "why") { p.set("word", state.word + 1); p.set("tag", state.tagLayer); }
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
  setupModels(p.get("model2"));
  if (p.has("compare")) $("sentence2").value = p.get("compare");
  else if (window.ATTNLAB_EMBED) $("sentence2").value = "";  // a saved page holds no other sentence
  state.whatif.position = number("word");
  state.whatif.replacement = p.get("replace") || null;
  state.view = VIEWS.includes(p.get("view")) ? p.get("view") : "head";
  state.scale = SCALES.includes(p.get("scale")) ? p.get("scale") : "row";
  $("scale").value = state.scale;
  state.layer = number("layer"); state.head = number("head"); state.query = number("query");
  state.word = number("word"); state.tagLayer = (p.get("tag") || "UPOS").toUpperCase();
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
  activateOnSpace($("export-png")); activateOnSpace($("export-json"));
  $("model2").addEventListener("change", () => render());
  for (const side of ["a", "b", "diff"]) {
    $(`heatmap-${side}`).addEventListener("mousemove", readCompare);
    $(`heatmap-${side}`).addEventListener("mouseleave", () => { $("compare-readout").textContent = ""; });
  }
  window.addEventListener("hashchange", () => { if (readUrl(location.hash)) submit(); });
}

async function start() {
  setTheme(storedTheme(), false);
  // views in their own files (whatif.js) load after this one: wait for them
  if (document.readyState === "loading") await new Promise((done) => document.addEventListener("DOMContentLoaded", done));
  wire();
  reportHeight();
  await loadHealth();
  const embed = window.ATTNLAB_EMBED;
  if (readUrl(location.hash || (embed ? embed.hash : ""))) await submit();
}

start();
