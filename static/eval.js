// The rating page: one item at a time, two outputs in the order the server chose, system names
// shown only after the vote. Everything from the server goes in with textContent, never innerHTML.
"use strict";

const CONFIG = JSON.parse(document.getElementById("config").textContent);
const BASE = `/eval/${encodeURIComponent(CONFIG.study)}`;
const $ = id => document.getElementById(id);
let current = null;  // the item on screen: {token, prompt, outputs}
const progress = { done: 0, total: 0 };

function setBusy(busy) {
  document.querySelectorAll(".choice").forEach(b => { b.disabled = busy; });
}

function showError(err) {
  $("error").textContent = (err.field ? `${err.field}: ` : "") + err.message;
}

async function getJSON(resp) {
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw body.error || { message: `서버 오류 ${resp.status}` };
  return body;
}

function render(data) {
  current = data.item;
  $("error").textContent = "";
  $("next").hidden = true;
  Object.assign(progress, { done: data.done, total: data.total });
  $("progress").textContent = `평가한 항목 ${data.done} / ${data.total}`;
  document.querySelectorAll("#criteria select").forEach(s => { s.value = ""; });
  for (const side of ["A", "B"]) {
    const col = $(`side-${side}`);
    col.querySelector(".reveal").textContent = "";
    col.classList.remove("winner");
    col.querySelector(".prompt-part").textContent = current ? current.prompt : "";
    col.querySelector(".new").textContent = current ? current.outputs[side] : "";
  }
  $("prompt").textContent = current ? current.prompt : "";
  if (!current) {
    $("status").textContent = data.message;
    setBusy(true);
    return;
  }
  $("status").textContent = "";
  setBusy(false);
}

async function loadNext() {
  setBusy(true);
  try {
    render(await getJSON(await apiFetch(`${BASE}/next?rater=${encodeURIComponent(CONFIG.rater)}`)));
  } catch (err) {
    showError(err);
  }
}

async function vote(choice) {
  if (!current) return;
  setBusy(true);
  const criteria = {};
  document.querySelectorAll("#criteria select").forEach(s => { if (s.value) criteria[s.name] = s.value; });
  try {
    const resp = await apiFetch(`${BASE}/vote`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: current.token, choice, criteria, rater: CONFIG.rater }),
    });
    const data = await getJSON(resp);
    // now, and only now, say which system wrote which side
    for (const side of ["A", "B"]) {
      const who = data.reveal[side];
      const col = $(`side-${side}`);
      col.querySelector(".reveal").textContent = `${who.system} · 모델 ${who.model} · 프리셋 ${who.preset}`;
      col.classList.toggle("winner", choice === side);
    }
    const label = document.querySelector(`.choice[data-choice="${choice}"]`).textContent;
    $("status").textContent = `저장했습니다: ${label}`;
    $("progress").textContent = `평가한 항목 ${progress.done += 1} / ${progress.total}`;
    $("next").hidden = false;
    $("next").focus();
  } catch (err) {
    showError(err);
    $("next").hidden = false;  // e.g. already voted on this item (409): move on
  }
}

document.querySelectorAll(".choice").forEach(b => b.addEventListener("click", () => vote(b.dataset.choice)));
$("next").addEventListener("click", loadNext);
loadNext();
