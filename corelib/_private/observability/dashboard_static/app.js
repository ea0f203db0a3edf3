// minray dashboard: polls the head's JSON endpoints and redraws plain tables.
// No framework and no build step; every value goes in through textContent.
"use strict";

const POLL_MS = 2000;

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children || []) node.append(c instanceof Node ? c : String(c));
  return node;
}

function fmtBytes(n) {
  if (n === null || n === undefined || n < 0) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : "";
}

function cell(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function table(target, rows, columns) {
  const box = typeof target === "string" ? document.getElementById(target) : target;
  if (!rows.length) { box.replaceChildren(el("p", {class: "muted"}, ["None."])); return; }
  const head = el("tr", {}, columns.map(([title]) => el("th", {}, [title])));
  const body = rows.map(r => el("tr", {}, columns.map(([, key, fmt]) => {
    const value = typeof key === "function" ? key(r) : r[key];
    const td = el("td", {}, [fmt ? fmt(value) : cell(value)]);
    if (key === "state" || key === "status") td.className = "state-" + value;
    return td;
  })));
  box.replaceChildren(el("table", {}, [el("thead", {}, [head]), el("tbody", {}, body)]));
}

function badges(target, counts) {
  const entries = Object.entries(counts || {}).sort();
  document.getElementById(target).replaceChildren(
    ...entries.map(([k, n]) => el("span", {class: k}, [k + ": " + n])));
}

async function api(path) {
  const resp = await fetch(path, {cache: "no-store"});
  const body = await resp.json();
  if (!body.result) throw new Error(body.msg || resp.statusText);
  return body.data;
}

async function rows(resource, query) {
  return (await api("/api/v0/" + resource + (query || ""))).result.result;
}

function overview(c) {
  const total = c.resources_total || {}, avail = c.resources_available || {};
  const store = c.object_store || {};
  const cards = [
    ["Uptime", Math.round(c.uptime_s) + " s"],
    ["CPU used", ((total.CPU || 0) - (avail.CPU || 0)) + " / " + (total.CPU || 0)],
    ["GPU used", ((total.GPU || 0) - (avail.GPU || 0)) + " / " + (total.GPU || 0)],
    ["Object store", fmtBytes(store.shm_bytes) + " / " + fmtBytes(store.capacity)],
    ["Running jobs", c.jobs],
    ["Tasks finished", (c.task_counts || {}).finished || 0],
    ["Tasks failed", (c.task_counts || {}).failed || 0],
  ];
  document.getElementById("overview").replaceChildren(
    ...cards.map(([k, v]) => el("div", {class: "card"}, [k, el("b", {}, [v])])));
  const used = store.capacity ? store.shm_bytes / store.capacity : 0;
  document.getElementById("store").replaceChildren(
    "Shared memory: ", el("span", {class: "bar"}, [el("i", {style: "width:" + (100 * used).toFixed(1) + "%"})]),
    " " + fmtBytes(store.shm_bytes) + " of " + fmtBytes(store.capacity) +
    ", " + (store.num_objects || 0) + " objects, spilled " + fmtBytes(store.spilled_bytes));
}

function libraries(libs) {
  const box = document.getElementById("libraries-body");
  const names = Object.keys(libs).sort();
  if (!names.length) { box.className = "muted"; box.textContent = "Nothing published yet."; return; }
  box.className = "";
  box.replaceChildren(...names.map(name => {
    const value = libs[name];
    const list = Array.isArray(value) ? value : (value && Array.isArray(value.rows) ? value.rows : null);
    const holder = el("div", {}, [el("h3", {}, [name])]);
    if (list && list.length && typeof list[0] === "object") {
      const box2 = el("div", {class: "table"});
      holder.append(box2);
      table(box2, list, Object.keys(list[0]).map(k => [k, k]));
      return holder;
    }
    holder.append(el("pre", {}, [JSON.stringify(value, null, 2)]));
    return holder;
  }));
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const [cluster, nodes, actors, tasks, objects, jobs, libs] = await Promise.all([
      api("/api/v0/cluster_status"), rows("nodes"), rows("actors", "?limit=200"),
      rows("tasks", "?limit=100&tail=1"), rows("objects", "?limit=200"), rows("jobs"),
      api("/api/v0/libraries"),
    ]);
    overview(cluster);
    table("nodes-table", nodes, [["Node", "node_id"], ["IP", "node_ip"], ["State", "state"],
      ["Head", "is_head_node"], ["CPU", r => (r.resources_total || {}).CPU],
      ["GPU", r => (r.resources_total || {}).GPU || 0],
      ["Memory", r => fmtBytes((r.resources_total || {}).memory)],
      ["CPU free", r => (r.resources_available || {}).CPU],
      ["Store", r => fmtBytes((r.resources_total || {}).object_store_memory)]]);
    const actorCounts = {};
    actors.forEach(a => { actorCounts[a.state] = (actorCounts[a.state] || 0) + 1; });
    badges("actor-counts", actorCounts);
    table("actors-table", actors, [["Actor", "actor_id"], ["Class", "class_name"],
      ["State", "state"], ["Name", "name"], ["PID", "pid"], ["Job", "job_id"],
      ["Restarts", "num_restarts"]]);
    badges("task-counts", cluster.task_states);
    const recent = tasks.slice().reverse();   // newest first
    table("tasks-table", recent, [["Task", "task_id"], ["Name", "name"], ["State", "state"],
      ["Type", "type"], ["Worker PID", "worker_pid"], ["Error", "error_type"],
      ["Job", "job_id"]]);
    table("objects-table", objects, [["Object", "object_id"], ["Size", "object_size", fmtBytes],
      ["Reference", "reference_type"], ["Task status", "task_status"], ["Owner", "type"],
      ["PID", "pid"]]);
    table("jobs-table", jobs, [["Job", r => r.job_id || r.submission_id], ["Type", "type"],
      ["Status", "status"], ["Entrypoint", "entrypoint"], ["Start", "start_time", fmtTime],
      ["End", "end_time", fmtTime]]);
    libraries(libs);
    status.textContent = "live · updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = "1";
  } catch (err) {
    status.textContent = "cannot reach the head: " + err.message;
  }
}

refresh();
setInterval(refresh, POLL_MS);
