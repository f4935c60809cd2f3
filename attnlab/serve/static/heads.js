// attnlab explorer: what each head does over a treebank, beside the model view's thumbnails.
// The numbers come from GET /api/heads (`attnlab serve --heads REPORT.json` or --treebank; in a
// notebook, window.ATTNLAB_EMBED.heads): per head the entropy of its attention rows (nats), the
// mean distance it looks over (words), the relation whose head or dependent it finds most
// often beyond the fixed-offset baseline (Clark et al. 2019), and the accuracy each tag layer
// loses when the head is switched off. The model view (renderModel in app.js) asks headOrder()
// in which order to draw the heads and headFacts() for the numbers under each.
"use strict";

const HEAD_SORTS = {
  layer: { label: "layer, head", key: (e) => 0 },
  entropy: { label: "entropy (focused first)", key: (e) => e.entropy },
  distance: { label: "distance (nearest first)", key: (e) => e.distance },
  importance: { label: "importance (largest loss first)", key: (e) => -meanLoss(e) },
  relation: { label: "relation accuracy (highest first)", key: (e) => (e.best ? -e.best.accuracy : 1) },
};

const headStats = { report: null, asked: null, sort: "layer" };

function meanLoss(e) {
  const drops = Object.values(e.importance || {}).map((v) => v.drop);
  return drops.length ? drops.reduce((a, b) => a + b, 0) / drops.length : 0;
}

// The report, asked for once (null when the server has none).
function loadHeadReport() {
  if (!headStats.asked) {
    const embed = window.ATTNLAB_EMBED;
    const answer = embed ? Promise.resolve(embed.heads || { report: null })
      : fetch("/api/heads").then((r) => (r.ok ? r.json() : { report: null }), () => ({ report: null }));
    headStats.asked = answer.then((a) => {
      headStats.report = (a && a.report) || null;
      return headStats.report;
    });
  }
  return headStats.asked;
}

function headEntry(l, h) {
  const r = headStats.report;
  return r ? r.per_head.find((e) => e.layer === l + 1 && e.head === h + 1) || null : null;
}

// [[layer, head], ...] (from 0) in the chosen order, or null without a report of this model's shape.
function headOrder(layers, heads) {
  const r = headStats.report;
  if (!r || r.layers !== layers || r.heads !== heads) return null;
  const key = HEAD_SORTS[headStats.sort].key;
  return r.per_head.slice()
    .sort((a, b) => key(a) - key(b) || a.layer - b.layer || a.head - b.head)
    .map((e) => [e.layer - 1, e.head - 1]);
}

const pct = (x) => `${(100 * x).toFixed(1)}%`;
const signed = (x) => `${x > 0 ? "+" : x < 0 ? "−" : "±"}${Math.abs(x).toFixed(2)}`;

// The numbers under one thumbnail: a list of labelled values, each with its raw value in data-value.
function headFacts(l, h) {
  const e = headEntry(l, h);
  if (!e) return null;
  const box = document.createElement("dl");
  box.className = "head-facts";
  const fact = (stat, name, text, value, title) => {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = text;
    Object.assign(dd.dataset, { stat, value: String(value) });
    if (title) dd.title = title;
    box.append(dt, dd);
  };
  fact("entropy", "entropy", e.entropy.toFixed(2), e.entropy, "mean entropy of its attention rows, in nats");
  fact("distance", "distance", e.distance.toFixed(2), e.distance, "mean |i − j| weighted by α′, in words");
  if (e.best) {
    const b = e.best, arrow = b.direction === "to_head" ? "→ head" : "→ dependent";
    const offset = `${b.offset > 0 ? "+" : ""}${b.offset}`;
    fact("relation", `${b.relation} ${arrow}`, `${pct(b.accuracy)} (offset ${pct(b.baseline)})`, b.accuracy,
         `the word's strongest key is its ${b.direction === "to_head" ? "head" : "dependent"} in ${b.relation} ` +
         `${pct(b.accuracy)} of ${b.total} times (${b.extra} words more than always attending to word i${offset}, ` +
         `which gets ${pct(b.baseline)})`);
  } else {
    fact("relation", "relation", "none beyond the offset", 0,
         "on no relation does its strongest key find more heads or dependents than the best fixed offset");
  }
  if (e.importance) {
    const parts = Object.entries(e.importance);
    fact("importance", "off", parts.map(([k, v]) => `${k} ${signed(-100 * v.drop)}`).join(", "), meanLoss(e),
         "accuracy change, in points, of each tag layer with this head switched off");
  }
  return box;
}

// The sort control and the legend, shown once there is a report for this model.
function setupHeadControls() {
  const box = document.getElementById("heads-sort-box");
  const select = document.getElementById("heads-sort");
  const legend = document.getElementById("heads-legend");
  if (!box || !select) return;
  const r = headStats.report;
  box.hidden = legend.hidden = !r;
  if (!r) return;
  document.getElementById("model-hint").textContent = "Every layer and head, in the order chosen below; click one to look at it alone.";
  if (!select.options.length) {
    for (const [value, s] of Object.entries(HEAD_SORTS)) select.add(new Option(s.label, value));
    select.value = headStats.sort;
    select.addEventListener("change", () => {
      headStats.sort = select.value;
      if (state.data && state.view === "model") renderModel();
    });
  }
  const intact = r.intact ? "; off: the accuracy change of each tag layer with the head switched off (intact: " +
    Object.entries(r.intact).map(([k, v]) => `${k} ${pct(v)}`).join(", ") + ")" : "";
  legend.textContent = `Over ${r.treebank || "a treebank"} (${r.words.toLocaleString("en")} words): entropy of the ` +
    "attention rows (nats), mean distance (words), the relation whose head or dependent the head's strongest key " +
    "finds most often beyond the fixed-offset baseline (accuracy, and the baseline's)" + intact + ".";
}

loadHeadReport().then(() => {
  setupHeadControls();
  if (typeof state !== "undefined" && state.data && !state.data.no_attention && state.view === "model") renderModel();
});
