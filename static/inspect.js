// See inside generation: each generated token tinted by the probability it was drawn with, its
// alternatives on hover or tap, and a "분포 보기" panel that draws one step's distribution before and
// after the decoding processors (what top-k, top-p and temperature keep, with the cut-off line).
// Data: /api/generate's "tokens" (top_tokens alternatives per step). Plain SVG, no library, no CDN.
"use strict";

const TOP_TOKENS = 20;  // the most the server gives; the panel draws them all, the tooltip the first 5
const SVG = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function pct(p) {
  return p >= 0.995 ? "100%" : p >= 0.1 ? `${(p * 100).toFixed(0)}%` : `${(p * 100).toFixed(1)}%`;
}

// Low-probability picks are warm, confident ones pale: a sampled surprise stands out.
function tint(p) {
  const hue = Math.round(50 + 70 * p);              // 50 (orange) .. 120 (green)
  const alpha = (0.55 - 0.4 * p).toFixed(2);
  return `hsla(${hue}, 85%, 55%, ${alpha})`;
}

function tokenSpan(tok, step, col) {
  const span = document.createElement("span");
  span.className = tok.text ? "tok" : "tok special";  // </s> adds no text: CSS draws a marker for it
  span.textContent = tok.text;
  span.style.background = tint(tok.p);
  span.tabIndex = 0;
  span.dataset.step = step;
  span.setAttribute("aria-label", `${tok.token.trim() || tok.text} 확률 ${pct(tok.p)}`);
  span.addEventListener("mouseenter", () => showTip(col, span, tok));
  span.addEventListener("focus", () => showTip(col, span, tok));
  span.addEventListener("mouseleave", () => hideTip(col));
  span.addEventListener("click", () => { showTip(col, span, tok); drawStep(col, tok, step); });
  return span;
}

// The tooltip: the chosen token, then the first alternatives as bars (before / after processing).
function showTip(col, span, tok) {
  const tip = col.querySelector(".tok-tip");
  tip.replaceChildren();
  const head = document.createElement("div");
  head.className = "tip-head";
  head.textContent = `선택: "${tok.token}" · 원래 ${pct(tok.p_raw)} → 처리 후 ${pct(tok.p)}`;
  tip.append(head);
  for (const alt of tok.top.slice(0, 5)) {
    const row = document.createElement("div");
    row.className = "tip-row" + (alt.id === tok.id ? " chosen" : "");
    const name = document.createElement("span");
    name.className = "tip-name";
    name.textContent = JSON.stringify(alt.token);
    const bar = document.createElement("span");
    bar.className = "tip-bar";
    const raw = document.createElement("i");
    raw.className = "raw";
    raw.style.width = `${Math.max(1, alt.p_raw * 100)}%`;
    const after = document.createElement("i");
    after.className = "after";
    after.style.width = `${Math.max(alt.p > 0 ? 1 : 0, alt.p * 100)}%`;
    bar.append(raw, after);
    const val = document.createElement("span");
    val.className = "tip-val";
    val.textContent = `${pct(alt.p_raw)} → ${alt.p > 0 ? pct(alt.p) : "잘림"}`;
    row.append(name, bar, val);
    tip.append(row);
  }
  const box = span.getBoundingClientRect(), parent = col.getBoundingClientRect();
  tip.style.left = `${Math.max(0, box.left - parent.left)}px`;
  tip.style.top = `${box.bottom - parent.top + 4}px`;
  tip.hidden = false;
}

function hideTip(col) {
  col.querySelector(".tok-tip").hidden = true;
}

// The panel: the step's TOP_TOKENS most likely tokens by the model's own probability (grey), what the
// processors left (blue: zero where top-k / top-p cut), and a red line after the last one that survived.
function drawStep(col, tok, step) {
  const panel = col.querySelector(".dist");
  panel.open = true;
  const chart = panel.querySelector(".dist-chart");
  const alts = tok.top;
  const W = 560, H = 220, left = 34, bottom = 70, barW = (W - left - 10) / alts.length;
  const maxP = Math.max(...alts.map(a => Math.max(a.p_raw, a.p)), 1e-6);
  const y = p => (H - bottom) * (1 - p / maxP) + 8;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "dist-svg",
                             "aria-label": `${step + 1}번째 토큰의 확률 분포` });
  svg.append(svgEl("line", { x1: left, y1: H - bottom + 8, x2: W - 6, y2: H - bottom + 8, class: "axis" }));
  svg.append(svgEl("text", { x: 2, y: 14, class: "tick" }, pct(maxP)));
  let lastKept = -1;
  alts.forEach((a, i) => {
    const x = left + i * barW;
    svg.append(svgEl("rect", { x: x + 1, y: y(a.p_raw), width: barW / 2 - 1, height: H - bottom + 8 - y(a.p_raw),
                               class: "raw" }));
    if (a.p > 0) {
      lastKept = i;
      svg.append(svgEl("rect", { x: x + barW / 2, y: y(a.p), width: barW / 2 - 1, height: H - bottom + 8 - y(a.p),
                                 class: "after" }));
    }
    const label = svgEl("text", { x: x + barW / 2, y: H - bottom + 20, class: "label" + (a.id === tok.id ? " chosen" : ""),
                                  transform: `rotate(55 ${x + barW / 2} ${H - bottom + 20})` }, a.token);
    svg.append(label);
  });
  if (lastKept >= 0 && lastKept < alts.length - 1) {  // the cut-off: nothing to its right can be drawn
    const x = left + (lastKept + 1) * barW;
    svg.append(svgEl("line", { x1: x, y1: 4, x2: x, y2: H - bottom + 8, class: "cut" }));
    svg.append(svgEl("text", { x: x + 3, y: 14, class: "cut-label" }, "여기서 잘림"));
  }
  chart.replaceChildren(svg);
  const kept = alts.filter(a => a.p > 0).length;
  panel.querySelector(".dist-caption").textContent =
    `${step + 1}번째 토큰 "${tok.token}": 모델의 원래 확률 ${pct(tok.p_raw)}, 반복 페널티·FUDGE·temperature·top-k·top-p를 ` +
    `거친 뒤 ${pct(tok.p)}. 상위 ${alts.length}개 중 ${kept}개가 살아남았습니다` +
    (kept === alts.length ? "(이 범위에서는 잘린 후보가 없음)." : ".");
}

// Called by app.js: add a piece's tokens to a sequence, or redraw it from the final list.
function renderTokens(col, target, tokens, reset) {
  if (reset) target.replaceChildren();
  const start = target.childElementCount;
  tokens.forEach((tok, i) => target.append(tokenSpan(tok, start + i, col)));
}

window.kogenInspect = { TOP_TOKENS, renderTokens, hideTip };
