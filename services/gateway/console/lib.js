// What every page uses: the API (with the session's CSRF token), safe DOM building (text is
// always text: nothing from the API becomes markup), formats and small SVG charts.

let csrfToken = "";

export function setCsrf(token) {
  csrfToken = token;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function headersFor(method) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken;
  return headers;
}

async function answer(reply) {
  if (reply.status === 204) return null;
  const type = reply.headers.get("content-type") || "";
  const data = type.includes("json") ? await reply.json() : await reply.text();
  if (!reply.ok) {
    const problem = typeof data === "object" ? data : { title: reply.statusText, detail: data };
    throw new ApiError(reply.status, problem);
  }
  return data;
}

export async function api(method, path, body) {
  const headers = headersFor(method);
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let reply;
  try {
    reply = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch (err) {
    throw new ApiError(0, { title: "The gateway cannot be reached", detail: String(err) });
  }
  return answer(reply);
}

// A multipart upload with progress (fetch reports none for request bodies).
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(headersFor("POST"))) {
      xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new ApiError(0, { title: "The upload failed on the way" }));
    xhr.onload = () => {
      let data = {};
      try {
        data = JSON.parse(xhr.responseText || "{}");
      } catch {
        data = { title: xhr.statusText, detail: xhr.responseText };
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, data));
    };
    xhr.send(form);
  });
}

// h("p", {class: "x"}, "text", child): an element; strings become text nodes, never markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  append(el, children);
  return el;
}

// A problem document as a readable message, in the page's error box.
export function problemBox(err) {
  const p = err.problem || {};
  const title = p.title || "Something went wrong";
  const status = err.status ? ` (${err.status})` : "";
  return h("div", { class: "error-box", role: "alert" },
    h("strong", {}, `${title}${status}`), p.detail ? h("p", {}, p.detail) : null);
}

let quiet = 0;

// A short note in the corner (announced to screen readers), gone after a few seconds.
export function say(message) {
  const status = document.getElementById("status");
  status.textContent = message;
  clearTimeout(quiet);
  quiet = setTimeout(() => { status.textContent = ""; }, 4000);
}

export function empty(message) {
  return h("p", { class: "empty" }, message);
}

export function table(headings, rows) {
  return h("div", { class: "scroll" },
    h("table", {},
      h("thead", {}, h("tr", {}, headings.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c)))))));
}

export function field(label, input) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input);
}

export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function short(id) {
  return id ? `${id.slice(0, 12)}…` : "";
}

// A sparkline of values (nulls are gaps), with the last value as its accessible name.
export function sparkline(values, label) {
  const width = 120;
  const height = 28;
  const top = Math.max(...values.filter((v) => v !== null), 1e-9);
  const step = width / Math.max(values.length - 1, 1);
  const x = (i) => (i * step).toFixed(1);
  const y = (v) => (height - 2 - (v / top) * (height - 4)).toFixed(1);
  let path = "";
  values.forEach((v, i) => {
    if (v === null) return;
    path += `${path && values[i - 1] !== null ? "L" : "M"}${x(i)},${y(v)} `;
  });
  const last = values.length - 1 - [...values].reverse().findIndex((v) => v !== null);
  const dot = last < values.length ? svg("circle", { r: 2.5, cx: x(last), cy: y(values[last]) }) : null;
  return svg("svg", { class: "spark", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": label, width, height }, svg("path", { d: path.trim() }), dot);
}

// Bars: [label, value] pairs, scaled to the largest (widths set through the CSSOM, which the
// page's style policy allows, unlike style attributes).
export function bars(pairs, unit) {
  const top = Math.max(...pairs.map(([, v]) => v), 1e-9);
  return h("div", { class: "bars" }, pairs.map(([label, value]) => {
    const bar = h("span", { class: "bar-fill" });
    bar.style.width = `${Math.round((value / top) * 100)}%`;
    return h("div", { class: "bar-row" },
      h("span", { class: "bar-label" }, label),
      h("span", { class: "bar-track" }, bar),
      h("span", { class: "bar-value" }, `${value} ${unit}`));
  }));
}
