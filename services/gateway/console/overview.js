// Live: every process's telemetry windows (from the log), a snapshot at least every 2 s over
// server-sent events; each series with its latest value and a sparkline of the last hour.
import { empty, h, sparkline, table } from "./lib.js";

function latest(values) {
  for (let i = values.length - 1; i >= 0; i -= 1) if (values[i] !== null) return values[i];
  return null;
}

function number(v, digits = 1) {
  return v === null ? "—" : Number(v).toFixed(digits);
}

function operations(snapshot) {
  if (!snapshot.operations.length) {
    return empty("No requests measured in the last hour: ingest or search something.");
  }
  return table(["Operation", "Requests/s", "p95 ms", "Errors", "Last hour (requests/s)"],
    snapshot.operations.map((op) => [
      op.name,
      h("span", { class: "num", "data-series": `${op.name} rps` }, number(latest(op.rps), 2)),
      h("span", { class: "num" }, number(latest(op.p95_ms))),
      h("span", { class: "num" }, number(latest(op.errors), 0)),
      sparkline(op.rps, `${op.name}: requests per second over the last hour`),
    ]));
}

function gauges(snapshot) {
  if (!snapshot.gauges.length) return empty("No gauges reported yet.");
  return table(["Gauge", "Now", "Last hour"], snapshot.gauges.map((g) => [
    g.name,
    h("span", { class: "num", "data-series": g.name }, number(latest(g.values), 2)),
    sparkline(g.values, `${g.name} over the last hour`),
  ]));
}

export async function overviewPage(view) {
  const stamp = h("p", { class: "muted", id: "overview-updated" }, "Waiting for the first numbers…");
  const ops = h("section", { "aria-labelledby": "ops-title" },
    h("h2", { id: "ops-title" }, "Requests by operation"));
  const levels = h("section", { "aria-labelledby": "gauges-title" },
    h("h2", { id: "gauges-title" }, "Gauges: consumer lag and delay, inference queue and batches"),
    h("p", { class: "muted" }, "consumer_delay_ms: from a record reaching the log to its projection"
      + " applying it; for group search, how soon new content is searchable."));
  const opsBody = h("div");
  const levelsBody = h("div");
  ops.append(opsBody);
  levels.append(levelsBody);
  view.append(stamp, ops, levels);
  let updates = 0;
  const feed = new EventSource("/console/telemetry");
  feed.onmessage = (message) => {
    const snapshot = JSON.parse(message.data);
    updates += 1;
    opsBody.replaceChildren(operations(snapshot));
    levelsBody.replaceChildren(gauges(snapshot));
    const newest = snapshot.latest ? new Date(snapshot.latest).toLocaleTimeString() : "none yet";
    stamp.textContent = `Live: update ${updates}, newest window ${newest}.`;
    stamp.dataset.updates = String(updates);
  };
  feed.onerror = () => {
    stamp.textContent = "The live feed was interrupted; reconnecting…";
  };
  return () => feed.close();
}
