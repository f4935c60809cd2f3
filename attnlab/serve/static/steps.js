// attnlab explorer, the Steps view: how one head computes its output for one query word i, with the
// numbers of /api/steps. First the seed's formula, then what this model adds to it, each named (its
// layer norm, the biases, rotary or absolute positions, W^O), then the numbers in the model's order:
// a^i, W^(q,h) and the biases, q^i before and after the rotary turn, the keys j with alpha and
// alpha' (the strongest few for a long sentence) beside a chart of both, q^i o k^j entry by entry
// for one key, and b^i. Uses app.js's state, $, api, sizeCanvas and escapeHtml when called (it is loaded
// first and defines functions only).
"use strict";

const STEPS_LONG = 12;              // a sentence longer than this shows its top keys by default
const STEPS_TOP = 10;               // ... this many
const STEPS_TEXT_CELLS = 32;        // a vector up to this long is written out; a longer one is a strip
// the Steps colour scale of a number: white at 0, blue below, red above; both ends light enough
// for the page's ink (#1d232a) to keep a 4.5:1 contrast on every cell
const STEPS_NEGATIVE = [95, 150, 210], STEPS_POSITIVE = [222, 110, 90];

const stepsView = { keys: null, key: null, at: "" };  // keys shown ("top k" or all), chosen key j, for which head/query

function stepsColour(t) {
  const a = Math.min(Math.abs(t), 1), end = t < 0 ? STEPS_NEGATIVE : STEPS_POSITIVE;
  const [r, g, b] = end.map((c) => Math.round(255 + a * (c - 255)));
  return `rgb(${r}, ${g}, ${b})`;
}

// the API's plain notation (x^i, W^(q,2), alpha'_(i,j), 10000^(-2(m - 1)/d)) as HTML
function seedHtml(text) {
  const words = escapeHtml(text)
    .replace(/alpha&#39;/g, "α′").replace(/alpha/g, "α").replace(/theta/g, "θ").replace(/beta/g, "β").replace(/sqrt/g, "√")
    .replace(/sum_(\w)/g, "Σ_$1").replace(/ \. /g, " · ").replace(/ \* /g, " · ").replace(/&lt;-/g, "←");
  let out = "";
  for (let k = 0; k < words.length; k++) {
    const c = words[k];
    if ((c === "^" || c === "_") && k + 1 < words.length) {
      const tag = c === "^" ? "sup" : "sub";
      let body;
      if (words[k + 1] === "(") {  // ^( ... ) with balanced brackets inside
        let depth = 0, e = k + 1;
        for (; e < words.length; e++) {
          if (words[e] === "(") depth++;
          else if (words[e] === ")" && --depth === 0) break;
        }
        body = words.slice(k + 2, e); k = e;
      } else {
        const m = /^[\w-]+/.exec(words.slice(k + 1)) || [""];
        body = c === "_" ? m[0].slice(0, 1) : m[0]; k += body.length;
      }
      out += `<${tag}>${body}</${tag}>`;
    } else {
      out += c;
    }
  }
  return out;
}

async function stepsOf(layer, head) {
  const key = `${layer},${head}`;
  if (!state.steps.has(key)) {
    state.steps.set(key, await api("/api/steps", { text: state.text, layer, head }));
  }
  return state.steps.get(key);
}

// the keys the table shows: all of a short sentence, the strongest STEPS_TOP of a long one (by alpha')
function shownKeys(s, i) {
  const n = s.tokens.length;
  const k = stepsView.keys === null ? (n > STEPS_LONG ? STEPS_TOP : n) : Math.min(stepsView.keys, n);
  const order = s.alpha_prime[i].map((w, j) => j);
  if (k >= n) return order;
  return order.sort((x, y) => s.alpha_prime[i][y] - s.alpha_prime[i][x] || x - y).slice(0, k);
}

function strongestKey(s, i) {
  const row = s.alpha_prime[i];
  return row.indexOf(Math.max(...row));
}

async function renderSteps() {
  const s = await stepsOf(state.layer, state.head);
  const i = state.query, tokens = s.tokens, h = state.head + 1;
  const at = `${state.layer},${state.head},${i},${state.text}`;
  if (stepsView.at !== at) { stepsView.at = at; stepsView.key = null; }
  const j = stepsView.key === null ? strongestKey(s, i) : stepsView.key;
  const panel = $("steps-panel");
  panel.replaceChildren();
  const add = (tag, html, cls) => {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    el.innerHTML = html;
    panel.appendChild(el);
    return el;
  };
  const word = (k) => `<b>${k + 1} “${escapeHtml(tokens[k])}”</b>`;
  const rotary = Boolean(s.theta);
  add("p", `Layer ${state.layer + 1}, head ${h}, query word ${word(i)} (d = ${s.d}, D = ${s.D}, ` +
      `√d = ${Math.sqrt(s.d).toFixed(4)}, ${s.normalize})`, "step").id = "steps-title";

  // the seed's formula, then what this model adds to it
  const seed = add("div", "<h3>The seed's formula</h3>", "steps-box");
  seed.id = "steps-seed";
  for (const line of ["q^i = W^q a^i,  k^j = W^k a^j,  v^j = W^v a^j", "alpha_(i,j) = q^i . k^j / sqrt(d)",
                      `alpha'_(i,j) = ${s.normalize}_j(alpha_(i,j))`, "b^i = sum_j alpha'_(i,j) v^j"]) {
    const p = document.createElement("p");
    p.className = "formula"; p.innerHTML = seedHtml(line);
    seed.appendChild(p);
  }
  const adds = add("div", "<h3>What this model adds, in the order it applies them</h3>", "steps-box");
  adds.id = "steps-additions";
  const list = document.createElement("ol");
  for (const a of s.additions) {
    const li = document.createElement("li");
    li.dataset.name = a.name;
    li.innerHTML = `<b>${escapeHtml(a.name)}</b>: <span class="formula">${seedHtml(a.formula)}</span><br>${seedHtml(a.text)}`;
    list.appendChild(li);
  }
  adds.appendChild(list);
  panel.appendChild(stepsLegend());

  // 1. a^i
  add("h3", `1. a<sup>${i + 1}</sup>: the layer's input after its norm (${s.D} numbers)`);
  panel.appendChild(vectorRow("a", `a<sup>${i + 1}</sup>`, s.a[i], s.a.flat()));

  // 2. the projections, with their biases, and the rotary turn
  const plus = (x) => (s.bias ? ` + b<sup>${x},${h}</sup>` : "");
  add("h3", `2. q<sup>${i + 1}</sup> = W<sup>q,${h}</sup> a<sup>${i + 1}</sup>${plus("q")}` +
      (rotary ? ", then turned by its position" : ""));
  panel.appendChild(weightsFigure(s, h));
  if (s.bias) {
    for (const x of "qkv") panel.appendChild(vectorRow(`b${x}`, `b<sup>${x},${h}</sup>`, s.bias[x], s.bias[x]));
  }
  const qAll = s.q.flat().concat(rotary ? s.q_projected.flat() : []);
  if (rotary) {
    panel.appendChild(vectorRow("q-projected", `W<sup>q,${h}</sup>a<sup>${i + 1}</sup>${plus("q")}`, s.q_projected[i], qAll,
                                "before the turn"));
    panel.appendChild(vectorRow("q", `q<sup>${i + 1}</sup>`, s.q[i], qAll, `turned: pair m by ${i} × θ<sub>m</sub>`));
    panel.appendChild(vectorRow("theta", "θ", s.theta, s.theta, "angle of each pair per position"));
  } else {
    panel.appendChild(vectorRow("q", `q<sup>${i + 1}</sup>`, s.q[i], qAll, "no rotary: as projected"));
  }

  // 3. the keys: alpha and alpha' (table and chart side by side)
  add("h3", `3. α<sub>${i + 1},j</sub> = q<sup>${i + 1}</sup> · k<sup>j</sup> / √d, then ` +
      `${NORMALIZER_HTML[s.normalize].formula}`);
  panel.appendChild(keysControl(s));
  const keys = shownKeys(s, i);
  const scores = document.createElement("div");
  scores.className = "steps-scores";
  const chart = document.createElement("canvas");
  chart.id = "steps-chart";
  chart.setAttribute("role", "img");
  chart.setAttribute("aria-label", `α and α′ of query ${i + 1} over the keys in the table`);
  scores.append(stepsTable(s, i, keys, j), chart);
  panel.appendChild(scores);
  const rest = 1 - keys.reduce((sum, k) => sum + s.alpha_prime[i][k], 0);
  if (keys.length < tokens.length) {
    add("p", `The ${keys.length} keys with the largest α′ of ${tokens.length}, strongest first; ` +
        `the other ${tokens.length - keys.length} hold α′ = ${Math.max(rest, 0).toFixed(4)} together.`, "hint").id = "steps-rest";
  }
  const lz = s.normalizer[i];
  const extra = s.normalize === "softmax" ? ` (Z<sub>i</sub> = ${Math.exp(lz).toPrecision(5)})` : "";
  add("p", `Normalizer of query ${i + 1}: ${NORMALIZER_HTML[s.normalize].name} = ` +
      `<span id="steps-normalizer">${lz.toFixed(4)}</span>${extra}`, "step");

  // 4. one key: k^j before and after the turn, v^j, and q^i o k^j entry by entry
  add("h3", `4. Key ${word(j)}: q<sup>${i + 1}</sup> ∘ k<sup>${j + 1}</sup>, entry by entry, sums to ` +
      `q<sup>${i + 1}</sup> · k<sup>${j + 1}</sup> (click a row of the table for another key)`).id = "steps-key-title";
  const kAll = s.k.flat().concat(rotary ? s.k_projected.flat() : []);
  if (rotary) {
    panel.appendChild(vectorRow("k-projected", `W<sup>k,${h}</sup>a<sup>${j + 1}</sup>${plus("k")}`, s.k_projected[j], kAll,
                                "before the turn"));
  }
  panel.appendChild(vectorRow("k", `k<sup>${j + 1}</sup>`, s.k[j], kAll, rotary ? `turned by ${j} × θ` : "no rotary: as projected"));
  panel.appendChild(vectorRow("v", `v<sup>${j + 1}</sup>`, s.v[j], s.v.flat(), "not turned"));
  const product = s.q[i].map((x, m) => x * s.k[j][m]);
  panel.appendChild(vectorRow("qk", `q<sup>${i + 1}</sup>∘k<sup>${j + 1}</sup>`, product, product));
  const dot = product.reduce((a, b) => a + b, 0);
  add("p", `Σ<sub>m</sub> (q<sup>${i + 1}</sup>∘k<sup>${j + 1}</sup>)<sub>m</sub> = q<sup>${i + 1}</sup> · k<sup>${j + 1}</sup> = ` +
      `<span id="steps-dot">${dot.toFixed(4)}</span>; / √${s.d} = <span id="steps-dot-alpha">${(dot / Math.sqrt(s.d)).toFixed(4)}</span>` +
      ` = α<sub>${i + 1},${j + 1}</sub>`, "step");

  // 5. the output
  add("h3", `5. b<sup>${i + 1}</sup> = Σ<sub>j</sub> α′<sub>${i + 1},j</sub> v<sup>j</sup>: head ${h}'s output for this word`);
  panel.appendChild(vectorRow("b", `b<sup>${i + 1}</sup>`, s.b[i], s.b.flat(),
                              `entries ${state.head * s.d + 1}..${(state.head + 1) * s.d} of what W<sup>O</sup> multiplies`));
  drawStepsChart(chart, s, i, keys);
}

// how alpha' follows from alpha, as the page writes it (the API's normalizer_formula in HTML)
const NORMALIZER_HTML = {
  softmax: { name: "log Z<sub>i</sub>", formula: "α′<sub>i,j</sub> = exp(α<sub>i,j</sub> − log Z<sub>i</sub>), " +
             "log Z<sub>i</sub> = log Σ<sub>j</sub> exp(α<sub>i,j</sub>)" },
  relu: { name: "c<sub>i</sub>", formula: "α′<sub>i,j</sub> = max(α<sub>i,j</sub>, 0) / c<sub>i</sub>, " +
          "c<sub>i</sub> = the keys word i may attend to" },
  sigmoid: { name: "log c<sub>i</sub>", formula: "α′<sub>i,j</sub> = sigmoid(α<sub>i,j</sub> − log c<sub>i</sub>), " +
             "c<sub>i</sub> = the keys word i may attend to" },
};

// The legend of the Steps colours.
function stepsLegend() {
  const box = document.createElement("p");
  box.id = "steps-legend";
  const bar = document.createElement("span");
  bar.className = "legend-bar";
  bar.style.background = `linear-gradient(to right, ${stepsColour(-1)}, ${stepsColour(0)}, ${stepsColour(1)})`;
  const label = (text) => { const s = document.createElement("span"); s.textContent = text; return s; };
  box.append("Colour of a number: ", label("−max"), bar, label("+max"),
             " — blue below 0, red above; full colour at the largest |value| of its kind (all a, all k, …).");
  return box;
}

// A vector (a^i, q^i, k^j, v^j, b^i, ...) as a row of cells coloured by sign and size against
// `all` (the vector's kind), written out when short, a strip of colours (read by pointing) when long.
function vectorRow(name, label, values, all, note) {
  const box = document.createElement("div");
  box.className = "vector";
  box.dataset.name = name;
  const head = document.createElement("span");
  head.className = "vector-name";
  head.innerHTML = label;
  box.append(head, vectorCells(values, Math.max(1e-9, ...all.map(Math.abs))));
  if (note) {
    const n = document.createElement("span");
    n.className = "vector-note"; n.innerHTML = note;
    box.appendChild(n);
  }
  return box;
}

function vectorCells(values, top, strip = values.length > STEPS_TEXT_CELLS) {
  const cells = document.createElement("span");
  const text = !strip;
  cells.className = text ? "cells" : "cells strip";
  // a strip of d entries fits in about 100 px (the table) or wraps (a^i, D entries)
  const px = Math.max(3, Math.min(6, Math.floor(100 / values.length)));
  values.forEach((v, m) => {
    const c = document.createElement("span");
    c.className = "num";
    c.dataset.value = String(v);
    c.style.background = stepsColour(v / (top || Math.max(1e-9, ...values.map(Math.abs))));
    if (text) c.textContent = v.toFixed(3);
    else { c.title = `${m + 1}: ${v.toFixed(4)}`; c.style.width = `${px}px`; }
    cells.appendChild(c);
  });
  return cells;
}

// The three (d x D) matrices of the head, as pictures one can point at.
function weightsFigure(s, h) {
  const box = document.createElement("div");
  box.className = "steps-weights";
  if (!s.W) {  // a saved page carries the matrices of the head it opened on only
    const note = document.createElement("p");
    note.className = "hint steps-no-weights";
    note.textContent = "This saved page holds the matrices W of the head it opened on only; open it on this " +
      "head (show(..., layer=, head=)) or run attnlab serve to see them.";
    box.appendChild(note);
    return box;
  }
  const top = Math.max(1e-9, ...["q", "k", "v"].flatMap((x) => s.W[x].flat().map(Math.abs)));
  const width = Math.min(320, Math.max(120, ($("steps-panel").clientWidth || 320) - 20));
  const px = Math.max(1, Math.min(12, Math.floor(width / s.D)));
  for (const x of ["q", "k", "v"]) {
    const figure = document.createElement("figure");
    const canvas = document.createElement("canvas");
    canvas.id = `steps-W-${x}`;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `W ${x} of head ${h}: ${s.d} by ${s.D}`);
    const ctx = canvas.getContext("2d");
    sizeCanvas(canvas, ctx, s.D * px, s.d * px);
    s.W[x].forEach((row, r) => row.forEach((w, c) => {
      ctx.fillStyle = stepsColour(w / top);
      ctx.fillRect(c * px, r * px, px, px);
    }));
    const caption = document.createElement("figcaption");
    caption.innerHTML = `W<sup>${x},${h}</sup> (${s.d} × ${s.D}) <span class="steps-w-read"></span>`;
    const read = caption.querySelector(".steps-w-read");
    canvas.addEventListener("mousemove", (e) => {
      const rect = canvas.getBoundingClientRect();
      const c = Math.floor((e.clientX - rect.left) / rect.width * s.D), r = Math.floor((e.clientY - rect.top) / rect.height * s.d);
      if (r >= 0 && c >= 0 && r < s.d && c < s.D) read.textContent = `[${r + 1}, ${c + 1}] = ${s.W[x][r][c].toFixed(4)}`;
    });
    canvas.addEventListener("mouseleave", () => { read.textContent = ""; });
    figure.append(canvas, caption);
    box.appendChild(figure);
  }
  return box;
}

// How many keys the table shows.
function keysControl(s) {
  const label = document.createElement("label");
  label.className = "steps-keys";
  label.append("Keys shown: ");
  const select = document.createElement("select");
  select.id = "steps-keys";
  select.setAttribute("aria-label", "keys shown in the table");
  const n = s.tokens.length;
  const choices = [5, 10, 20].filter((k) => k < n).map((k) => [String(k), `top ${k} by α′`]).concat([["all", `all ${n}`]]);
  for (const [value, text] of choices) {
    const option = document.createElement("option");
    option.value = value; option.textContent = text;
    select.appendChild(option);
  }
  const shown = shownKeys(s, state.query).length;
  select.value = shown >= n ? "all" : String(shown);
  select.addEventListener("change", () => {
    stepsView.keys = select.value === "all" ? Infinity : Number(select.value);
    renderSteps();
  });
  label.appendChild(select);
  return label;
}

function stepsTable(s, i, keys, chosen) {
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  const table = document.createElement("table");
  table.id = "steps-table";
  const head = table.createTHead().insertRow();
  for (const h of ["j", "key word", "k<sup>j</sup>", "α<sub>i,j</sub>", "α′<sub>i,j</sub>", "v<sup>j</sup>"]) {
    const th = document.createElement("th"); th.innerHTML = h; head.appendChild(th);
  }
  const body = table.createTBody();
  const top = Math.max(1e-9, ...s.alpha_prime[i]);
  const kTop = Math.max(1e-9, ...s.k.flat().map(Math.abs)), vTop = Math.max(1e-9, ...s.v.flat().map(Math.abs));
  for (const j of keys) {
    const tr = body.insertRow();
    tr.dataset.key = String(j);
    tr.tabIndex = 0;
    tr.title = `key ${j + 1}: show q ∘ k entry by entry`;
    tr.className = [j === i ? "query" : "", j === chosen ? "chosen" : ""].join(" ").trim();
    const cell = (cls, content) => {
      const td = tr.insertCell(); td.className = cls;
      if (content instanceof Node) td.appendChild(content); else td.textContent = content;
      return td;
    };
    cell("j", String(j + 1)); cell("word", s.tokens[j]);
    const k = cell("k", vectorCells(s.k[j], kTop, true));
    k.querySelectorAll(".num").forEach((c, m) => { c.title = `k${m + 1} = ${s.k[j][m].toFixed(4)}`; });
    cell("alpha", s.alpha[i][j].toFixed(4)).dataset.value = String(s.alpha[i][j]);
    const ap = cell("alpha-prime", s.alpha_prime[i][j].toFixed(4));
    ap.dataset.value = String(s.alpha_prime[i][j]);
    ap.style.background = `linear-gradient(to right, rgba(42,111,176,0.30) ${(100 * s.alpha_prime[i][j] / top).toFixed(1)}%, transparent 0)`;
    const v = cell("v", vectorCells(s.v[j], vTop, true));
    v.querySelectorAll(".num").forEach((c, m) => { c.title = `v${m + 1} = ${s.v[j][m].toFixed(4)}`; });
    const choose = () => { stepsView.key = j; renderSteps(); };
    tr.addEventListener("click", choose);
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); choose(); } });
  }
  wrap.appendChild(table);
  return wrap;
}

// alpha_(i,j) (grey, signed) and alpha'_(i,j) (blue) of the keys in the table, one row per key in
// the table's order, each panel with its axis. Its geometry (labels, ticks, font) is kept on the canvas.
function drawStepsChart(canvas, s, i, keys) {
  const ctx = canvas.getContext("2d");
  const font = 11, row = 18;
  ctx.font = `${font}px system-ui, sans-serif`;
  const labelOf = (j) => `${j + 1} ${s.tokens[j]}`;
  const avail = Math.max(240, Math.min(420, (canvas.parentElement.clientWidth || 420) - 4));
  const left = Math.min(120, Math.ceil(Math.max(...keys.map((j) => ctx.measureText(labelOf(j)).width))) + 10);
  const gap = 16, panel = Math.floor((avail - left - gap - 12) / 2);
  const top = 30, H = top + keys.length * row + 34, W = left + 2 * panel + gap + 12;
  sizeCanvas(canvas, ctx, W, H);
  const alpha = keys.map((j) => s.alpha[i][j]), ap = keys.map((j) => s.alpha_prime[i][j]);
  const span = Math.max(1e-9, ...s.alpha[i].map(Math.abs));
  const apTop = Math.max(1e-9, ...s.alpha_prime[i]);
  const x0a = left, x0p = left + panel + gap;
  const zero = x0a + panel / 2;
  const labels = [], ticks = [];
  ctx.font = `${font}px system-ui, sans-serif`; ctx.textBaseline = "middle"; ctx.fillStyle = "#1d232a";
  ctx.textAlign = "left";
  ctx.fillText(`α (q·k/√d), query ${i + 1}`, x0a, 10);
  ctx.fillText("α′ (normalized)", x0p, 10);
  keys.forEach((j, r) => {
    const y = top + r * row;
    ctx.fillStyle = "#1d232a"; ctx.textAlign = "right";
    let text = labelOf(j);
    while (text.length > 2 && ctx.measureText(text).width > left - 8) text = text.slice(0, -2) + "…";
    ctx.fillText(text, left - 6, y + row / 2);
    const w = ctx.measureText(text).width;
    labels.push({ x: left - 6 - w, y: y + row / 2 - font / 2, w, h: font, text });
    const a = (alpha[r] / span) * (panel / 2);
    ctx.fillStyle = "#6b7682";
    ctx.fillRect(Math.min(zero, zero + a), y + 3, Math.abs(a), row - 6);
    ctx.fillStyle = j === i ? "#1b4f80" : "#2a6fb0";
    ctx.fillRect(x0p, y + 3, (ap[r] / apTop) * panel, row - 6);
  });
  // axes: alpha from -max|alpha| to +max|alpha| around 0; alpha' from 0 to its largest value
  const axisY = top + keys.length * row + 4;
  ctx.strokeStyle = "#5b6570"; ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(x0a, axisY); ctx.lineTo(x0a + panel, axisY);
  ctx.moveTo(x0p, axisY); ctx.lineTo(x0p + panel, axisY);
  ctx.moveTo(zero, top); ctx.lineTo(zero, axisY);
  ctx.moveTo(x0p, top); ctx.lineTo(x0p, axisY);
  ctx.stroke();
  const tick = (x, value, align) => {
    ctx.beginPath(); ctx.moveTo(x, axisY); ctx.lineTo(x, axisY + 4); ctx.stroke();
    ctx.fillStyle = "#1d232a"; ctx.textAlign = align;
    const text = value.toFixed(2);
    ctx.fillText(text, x, axisY + 12);
    const w = ctx.measureText(text).width;
    ticks.push({ x: align === "left" ? x : align === "right" ? x - w : x - w / 2, y: axisY + 12 - font / 2, w, h: font, text, value });
  };
  tick(x0a, -span, "left"); tick(zero, 0, "center"); tick(x0a + panel, span, "right");
  tick(x0p, 0, "left"); tick(x0p + panel, apTop, "right");
  canvas.geometry = { labels, ticks, font, width: W, height: H, rows: keys.slice() };
}
