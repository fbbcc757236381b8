// Person search page: plain JS over the JSON API (no build step). Paths are relative, so the app works behind a prefix.
// The wording of attributes comes from /api/info's labels (src/data/attributes.py: the one place it is written).
"use strict";
const $ = (id) => document.getElementById(id);
const SHOWN = ["gender", "age", "upcolor", "downcolor", "backpack", "bag", "handbag", "hat", "up", "down", "clothes", "hair"];
const CARRIED = ["backpack", "bag", "handbag", "hat"]; // src/data/attributes.py CARRIED
let info = null;
let current = null; // the search on screen: {fetch(offset) -> promise, topK, matches: [...]}

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function api(url, options = {}) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = { detail: response.statusText }; }
  if (!response.ok) throw new Error(`${response.status}: ${body.detail || response.statusText}`);
  return body;
}

const value = (name, cls) => info.labels[name].values[cls];
const phrase = (name, cls) => info.labels[name].phrases[cls];

function filterString() {
  return [...document.querySelectorAll("#filters select")]
    .filter((s) => s.value).map((s) => `${s.name}=${s.value}`).join(",");
}

function caption(a) { // three short lines: who, what colours, what they carry
  const carried = CARRIED.filter((n) => a[n] === "yes").map((n) => phrase(n, "yes"));
  return [`${phrase("gender", a.gender)}, ${value("age", a.age)}`,
    `top ${value("upcolor", a.upcolor)}, lower ${value("downcolor", a.downcolor)}`, carried.join(", ")]
    .filter(Boolean).join("\n");
}

function score(match) {
  return match.p_same != null ? `same person ${(100 * match.p_same).toFixed(0)}%`
    : match.distance !== null ? `d=${match.distance.toFixed(3)}` : `p=${match.score.toFixed(3)}`;
}

function describeQuery(result) {
  if (result.kind === "description") return `description "${result.query.readable}" (${result.query.description})`;
  return result.kind === "id" ? `gallery image ${result.query.name}` : "uploaded photo";
}

function showUnderstood(query) {
  const box = $("understood");
  box.replaceChildren();
  if (!query || !query.understood) return;
  const line = (label, items, css) => {
    const p = document.createElement("p");
    p.className = css;
    p.textContent = `${label}: ${items.join("; ")}`;
    box.append(p);
  };
  line("understood", query.understood.map((u) => u.words === u.meaning ? u.words : `${u.words} → ${u.meaning}`), "understood");
  if (query.unknown.length) line("not understood", query.unknown, "unknown");
}

function clearResults() {
  $("grid").replaceChildren();
  $("query-attributes").textContent = "";
  showUnderstood(null);
  $("more").hidden = $("export").hidden = true;
  current = current && { ...current, matches: [] };
}

function addTiles(matches) {
  for (const match of matches) {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.id = match.id;
    tile.title = `${match.name}: click for a larger view`;
    const img = document.createElement("img");
    img.src = match.image;
    img.alt = match.name;
    const line = document.createElement("div");
    line.className = "value";
    line.textContent = `#${match.rank} ${score(match)}`;
    if (match.distance !== null) line.title = `distance ${match.distance.toFixed(4)}` + (match.camera !== null ? ` · cam ${match.camera}` : "");
    const attrs = document.createElement("div");
    attrs.className = "attrs";
    attrs.textContent = caption(match.attributes);
    tile.append(img, line, attrs);
    tile.addEventListener("click", () => view(match));
    $("grid").append(tile);
  }
}

function show(result, append) {
  const parts = Object.entries(result.timing_ms).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(", ");
  if (!append) {
    clearResults();
    showUnderstood(result.query);
    $("query-attributes").textContent = result.query.attributes
      ? "query: " + caption(Object.fromEntries(Object.entries(result.query.attributes).map(([k, v]) => [k, v.class]))).replaceAll("\n", "; ") : "";
  }
  current.matches = current.matches.concat(result.matches);
  addTiles(result.matches);
  setStatus(`${current.matches.length} results for ${describeQuery(result)} (${result.passing} of ${result.gallery_size} images `
    + `${result.kind === "description" ? "have all these predicted attributes" : "pass the filter"}`
    + `${result.rerank ? ", re-ranked" : ""}); ${parts}`);
  const deepest = result.offset + result.matches.length;
  const ranked = result.kind === "description" ? result.gallery_size : result.passing; // a description ranks every image
  $("more").hidden = result.matches.length < current.topK || deepest >= Math.min(ranked, info.limits.max_rank);
  $("export").hidden = !current.matches.length;
}

async function run(search, append = false) {
  setStatus(append ? "more…" : "searching…");
  try { show(await search.fetch(append ? current.matches.length : 0), append); } catch (e) { clearResults(); setStatus(e.message, true); }
}

function begin(search, state) { // a new search on screen; state: what the URL gets (null: it came from the URL)
  current = { ...search, matches: [] };
  if (state !== null) history.pushState(state, "", state ? `?${new URLSearchParams(state)}` : location.pathname);
  run(current);
}

function settings() {
  return { top_k: $("topk").value, rerank: $("rerank").checked, filter: filterString() };
}

function searchFile(file) {
  $("query-preview").src = URL.createObjectURL(file);
  $("query-preview").hidden = false;
  const { top_k, rerank, filter } = settings();
  begin({ topK: +top_k, fetch: (offset) => {
    const form = new FormData();
    for (const [k, v] of Object.entries({ file, top_k, rerank, offset })) form.append(k, v);
    if (filter) form.append("filter", filter);
    return api("api/search/image", { method: "POST", body: form });
  } }, ""); // a photo stays on this machine: the URL holds no search
}

function searchId(id, state) {
  $("file").value = ""; // the file box no longer names the photo searched before
  $("query-preview").src = `api/images/${id}`;
  $("query-preview").hidden = false;
  const { top_k, rerank, filter } = settings();
  const params = { top_k, rerank, ...(filter && { filter }) };
  begin({ topK: +top_k, fetch: (offset) => api(`api/search/id/${id}?${new URLSearchParams({ ...params, offset })}`) },
    state === undefined ? { id, ...params } : state);
}

function describe(state) {
  const text = $("text").value.trim();
  const description = text ? null : filterString();
  if (!text && !description) { clearResults(); setStatus("type a description or choose at least one attribute", true); return; }
  $("query-preview").hidden = true;
  const params = { ...(text ? { text } : { description }), top_k: $("topk").value };
  begin({ topK: +params.top_k, fetch: (offset) => api(`api/search/description?${new URLSearchParams({ ...params, offset })}`) },
    state === undefined ? params : state);
}

function view(match) { // the larger view: everything known of one result
  $("view-image").src = match.image;
  $("view-name").textContent = match.name;
  const facts = [["rank", `#${match.rank}`], ["camera", match.camera ?? "unknown"]];
  if (match.p_same != null) facts.push(["P(same person)", `${(100 * match.p_same).toFixed(1)}%`]);
  if (match.distance !== null) facts.push(["distance", match.distance.toFixed(4)]);
  if (match.score !== null) facts.push(["description score", match.score.toFixed(4)]);
  for (const name of SHOWN) facts.push([info.labels[name].label, value(name, match.attributes[name])]);
  $("view-facts").replaceChildren(...facts.map(([k, v]) => {
    const row = document.createElement("tr");
    row.append(...[k, v].map((t) => Object.assign(document.createElement("td"), { textContent: t })));
    return row;
  }));
  $("view-search").onclick = () => { $("view").close(); searchId(match.id); };
  $("view").showModal();
}

function exportCsv() {
  const columns = ["rank", "name", "id", "camera", "distance", "p_same", "score", ...SHOWN];
  const cell = (v) => (v === null || v === undefined ? "" : /[",\n]/.test(String(v)) ? `"${String(v).replaceAll('"', '""')}"` : String(v));
  const rows = current.matches.map((m) => columns.map((c) => cell(SHOWN.includes(c) ? m.attributes[c] : m[c])).join(","));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([[columns.join(","), ...rows].join("\n") + "\n"], { type: "text/csv" }));
  link.download = "search_results.csv";
  link.click();
}

function fromUrl(state) { // the search a URL (a shared link, the back button) names
  const params = Object.fromEntries(new URLSearchParams(location.search));
  if (params.top_k) $("topk").value = params.top_k;
  $("rerank").checked = params.rerank === "true";
  for (const s of document.querySelectorAll("#filters select")) s.value = "";
  for (const item of (params.filter || params.description || "").split(",").filter(Boolean)) {
    const [name, cls] = item.split("=");
    const select = document.querySelector(`#filters select[name="${name}"]`);
    if (select) select.value = cls;
  }
  $("text").value = params.text || "";
  if (params.id) searchId(+params.id, state);
  else if (params.text || params.description) describe(state);
  else { current = null; clearResults(); setStatus(ready()); }
}

const ready = () => (info.searchable_by_image ? "drop a photo, describe a person, or choose attributes"
  : "this index has no checkpoint: describe a person or choose attributes");

async function start() {
  info = await api("api/info");
  $("info").textContent = `${info.folder}: ${info.images} images, ${info.kind} index, ${info.metric}, input ${info.height}x${info.width}`;
  $("topk").max = info.limits.max_top_k;
  for (const name of SHOWN) {
    const label = document.createElement("label");
    label.textContent = info.labels[name].label;
    const select = document.createElement("select");
    select.name = name;
    select.add(new Option("any", ""));
    for (const cls of info.attributes[name]) select.add(new Option(value(name, cls), cls));
    label.append(select);
    $("filters").append(label);
  }
  $("file").addEventListener("change", (e) => e.target.files.length && searchFile(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) searchFile(e.dataTransfer.files[0]);
  });
  $("describe").addEventListener("click", () => describe());
  $("text-form").addEventListener("submit", (e) => { e.preventDefault(); describe(); });
  $("clear").addEventListener("click", () => { for (const s of document.querySelectorAll("#filters select")) s.value = ""; $("text").value = ""; });
  $("more").addEventListener("click", () => run(current, true));
  $("export").addEventListener("click", exportCsv);
  $("view-close").addEventListener("click", () => $("view").close());
  window.addEventListener("popstate", () => fromUrl(null));
  fromUrl(null);
}

start().catch((e) => setStatus(e.message, true));
