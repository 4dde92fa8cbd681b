// A provenance lineage drawn as a graph: the root on the left, each step upstream a column to
// the right; wheel or the buttons zoom, dragging (or the arrow keys) pans.
import { h, short, svg } from "./lib.js";

const COLUMN = 190;
const ROW = 64;

function layers(lineage) {
  const depth = new Map([[lineage.root_id, 0]]);
  const queue = [lineage.root_id];
  while (queue.length) {
    const id = queue.shift();
    for (const e of lineage.edges) {
      for (const [from, to] of [[e.source_id, e.target_id], [e.target_id, e.source_id]]) {
        if (from === id && !depth.has(to)) {
          depth.set(to, depth.get(id) + 1);
          queue.push(to);
        }
      }
    }
  }
  for (const n of lineage.nodes) if (!depth.has(n.id)) depth.set(n.id, 1);
  return depth;
}

function positions(lineage) {
  const depth = layers(lineage);
  const rows = new Map();
  const at = new Map();
  for (const node of lineage.nodes) {
    const column = depth.get(node.id);
    const row = rows.get(column) || 0;
    rows.set(column, row + 1);
    at.set(node.id, { x: 80 + column * COLUMN, y: 50 + row * ROW });
  }
  return at;
}

function caption(node) {
  return `${node.label} ${short(node.key || node.id)}`;
}

export function drawLineage(lineage) {
  const at = positions(lineage);
  const xs = [...at.values()].map((p) => p.x);
  const ys = [...at.values()].map((p) => p.y);
  const width = Math.max(...xs, 200) + 120;
  const height = Math.max(...ys, 100) + 60;
  let box = { x: 0, y: 0, w: width, h: height };
  const edges = lineage.edges.filter((e) => at.has(e.source_id) && at.has(e.target_id));
  const picture = svg("svg", {
    class: "graph", viewBox: `0 0 ${width} ${height}`, role: "img", tabindex: "0",
    "aria-label": `Provenance graph: ${lineage.nodes.length} nodes, ${edges.length} edges`,
  },
  ...edges.map((e) => {
    const a = at.get(e.source_id);
    const b = at.get(e.target_id);
    return svg("g", { class: "edge" },
      svg("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y }),
      svg("text", { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 4 }, e.type));
  }),
  ...lineage.nodes.map((n) => {
    const p = at.get(n.id);
    return svg("g", { class: n.id === lineage.root_id ? "node root" : "node" },
      svg("title", {}, `${n.label} ${n.key || n.id}`),
      svg("circle", { cx: p.x, cy: p.y, r: 9 }),
      svg("text", { x: p.x + 13, y: p.y + 4 }, caption(n)));
  }));
  const apply = () => picture.setAttribute("viewBox", `${box.x} ${box.y} ${box.w} ${box.h}`);
  const zoom = (factor) => {
    const cx = box.x + box.w / 2;
    const cy = box.y + box.h / 2;
    box = { w: box.w * factor, h: box.h * factor, x: cx - (box.w * factor) / 2, y: cy - (box.h * factor) / 2 };
    apply();
  };
  const pan = (dx, dy) => {
    box.x += dx;
    box.y += dy;
    apply();
  };
  picture.addEventListener("wheel", (e) => {
    e.preventDefault();
    zoom(e.deltaY > 0 ? 1.15 : 1 / 1.15);
  }, { passive: false });
  let drag = null;
  picture.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX, y: e.clientY };
    picture.setPointerCapture(e.pointerId);
  });
  picture.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const scale = box.w / picture.clientWidth;
    pan((drag.x - e.clientX) * scale, (drag.y - e.clientY) * scale);
    drag = { x: e.clientX, y: e.clientY };
  });
  picture.addEventListener("pointerup", () => { drag = null; });
  picture.addEventListener("keydown", (e) => {
    const moves = { ArrowLeft: [-40, 0], ArrowRight: [40, 0], ArrowUp: [0, -40], ArrowDown: [0, 40] };
    if (moves[e.key]) {
      e.preventDefault();
      pan(...moves[e.key]);
    } else if (e.key === "+" || e.key === "=") zoom(1 / 1.2);
    else if (e.key === "-") zoom(1.2);
  });
  const controls = h("div", { class: "graph-controls" },
    h("button", { type: "button", onclick: () => zoom(1 / 1.2), "aria-label": "Zoom in" }, "+"),
    h("button", { type: "button", onclick: () => zoom(1.2), "aria-label": "Zoom out" }, "−"),
    h("button", { type: "button", onclick: () => { box = { x: 0, y: 0, w: width, h: height }; apply(); } }, "Reset"));
  return h("div", { class: "graph-box" }, controls, picture);
}
