// Person search page: plain JS over the JSON API (no build step). Paths are relative, so the app works behind a prefix.
"use strict";
const $ = (id) => document.getElementById(id);
const SHOWN = ["gender", "age", "upcolor", "downcolor", "backpack", "bag", "handbag", "hat", "up", "down", "clothes", "hair"];
let info = null;

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

function filterString() {
  return [...document.querySelectorAll("#filters select")]
    .filter((s) => s.value).map((s) => `${s.name}=${s.value}`).join(",");
}

function caption(attributes) {
  const a = attributes;
  return `${a.gender}, ${a.age}, ${a.upcolor}/${a.downcolor}` + (a.backpack === "yes" ? ", backpack" : "")
    + (a.bag === "yes" ? ", bag" : "") + (a.handbag === "yes" ? ", handbag" : "") + (a.hat === "yes" ? ", hat" : "");
}

function show(result) {
  const t = result.timing_ms;
  const parts = Object.entries(t).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(", ");
  const what = result.kind === "description" ? `description ${result.query.description}`
    : result.kind === "id" ? `gallery image ${result.query.name}` : "uploaded photo";
  setStatus(`${result.matches.length} results for ${what} (${result.passing} of ${result.gallery_size} images `
    + `${result.kind === "description" ? "have all these predicted attributes" : "pass the filter"}`
    + `${result.rerank ? ", re-ranked" : ""}); ${parts}`);
  $("query-attributes").textContent = result.query.attributes
    ? "query: " + caption(Object.fromEntries(Object.entries(result.query.attributes).map(([k, v]) => [k, v.class]))) : "";
  const grid = $("grid");
  grid.replaceChildren();
  for (const match of result.matches) {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.id = match.id;
    tile.title = `${match.name}: click to search from this image`;
    const img = document.createElement("img");
    img.src = match.image;
    img.alt = match.name;
    const value = document.createElement("div");
    value.className = "value";
    value.textContent = `#${match.rank} ` + (match.p_same != null ? `same person ${(100 * match.p_same).toFixed(0)}%`
      : match.distance !== null ? `d=${match.distance.toFixed(3)}` : `p=${match.score.toFixed(3)}`)
    if (match.distance !== null) value.title = `distance ${match.distance.toFixed(4)}`
      + (match.camera !== null ? ` · cam ${match.camera}` : "");
    const attrs = document.createElement("div");
    attrs.className = "attrs";
    attrs.textContent = caption(match.attributes);
    tile.append(img, value, attrs);
    tile.addEventListener("click", () => searchId(match.id));
    grid.append(tile);
  }
}

async function run(promise) {
  setStatus("searching…");
  try { show(await promise); } catch (e) { setStatus(e.message, true); }
}

function searchFile(file) {
  $("query-preview").src = URL.createObjectURL(file);
  $("query-preview").hidden = false;
  const form = new FormData();
  form.append("file", file);
  form.append("top_k", $("topk").value);
  form.append("rerank", $("rerank").checked);
  const filter = filterString();
  if (filter) form.append("filter", filter);
  run(api("api/search/image", { method: "POST", body: form }));
}

function searchId(id) {
  const params = new URLSearchParams({ top_k: $("topk").value, rerank: $("rerank").checked });
  const filter = filterString();
  if (filter) params.set("filter", filter);
  $("query-preview").src = `api/images/${id}`;
  $("query-preview").hidden = false;
  run(api(`api/search/id/${id}?${params}`));
}

function describe() {
  const description = filterString();
  if (!description) { setStatus("choose at least one attribute to browse by description", true); return; }
  $("query-preview").hidden = true;
  run(api(`api/search/description?${new URLSearchParams({ description, top_k: $("topk").value })}`));
}

async function start() {
  info = await api("api/info");
  $("info").textContent = `${info.folder}: ${info.images} images, ${info.kind} index, ${info.metric}, input ${info.height}x${info.width}`;
  $("topk").max = info.limits.max_top_k;
  for (const name of SHOWN) {
    const label = document.createElement("label");
    label.textContent = name;
    const select = document.createElement("select");
    select.name = name;
    select.add(new Option("any", ""));
    for (const value of info.attributes[name]) select.add(new Option(value, value));
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
  $("describe").addEventListener("click", describe);
  $("clear").addEventListener("click", () => { for (const s of document.querySelectorAll("#filters select")) s.value = ""; });
  setStatus(info.searchable_by_image ? "drop a photo, or choose attributes and browse by description"
    : "this index has no checkpoint: browse by description or click a result");
}

start().catch((e) => setStatus(e.message, true));
