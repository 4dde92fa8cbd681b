// The autonomous loop: its mode and a switch, the decisions waiting for an admin (with their
// evidence, to approve or reject), and the cycles, each with its metric before and after.
import { api, bars, empty, field, h, problemBox, say, when } from "./lib.js";

function modeSwitch(current, refresh) {
  const choice = h("select", { name: "mode" },
    ["off", "advise", "auto"].map((m) => h("option", { value: m, selected: m === current.value }, m)));
  const reason = h("input", { name: "reason", required: true, maxlength: 2000, placeholder: "why" });
  const form = h("form", { class: "inline" }, field("Mode", choice), field("Reason", reason),
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("PUT", "/v1/admin/ooda/mode", { mode: choice.value, reason: reason.value });
      say(`The loop is now ${choice.value}.`);
      await refresh();
    } catch (err) {
      form.append(problemBox(err));
    }
  });
  const by = current.actor ? ` (set by ${current.actor}: ${current.reason})` : "";
  return h("section", { "aria-labelledby": "mode-title" }, h("h2", { id: "mode-title" }, "Mode"),
    h("p", {}, h("strong", { id: "loop-mode" }, current.value), by,
      " — off: it only observes; advise: every decision waits for an admin; auto: low-risk changes are applied."),
    form);
}

function decision(d, refresh) {
  const reason = h("input", { maxlength: 2000, placeholder: "optional" });
  const resolve = (verdict) => async () => {
    try {
      await api("POST", `/v1/admin/ooda/decisions/${d.decision_id}/${verdict}`, { reason: reason.value });
      say(`Decision ${verdict === "approve" ? "approved" : "rejected"}.`);
      await refresh();
    } catch (err) {
      item.append(problemBox(err));
    }
  };
  const item = h("li", { class: "decision", "data-decision": d.decision_id },
    h("p", {}, h("strong", {}, `${d.knob}: ${d.from_value} → ${d.to_value}`),
      ` (${d.playbook}, risk ${d.risk}, expires ${when(d.expires_at)})`),
    h("p", {}, d.reason), h("p", { class: "muted" }, `Evidence: ${d.evidence}`),
    field("Reason", reason),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "approve", onclick: resolve("approve") }, "Approve"),
      h("button", { type: "button", class: "danger reject", onclick: resolve("reject") }, "Reject")));
  return item;
}

async function cycleChart(cycle, box) {
  const detail = await api("GET", `/v1/ooda/cycles/${cycle.cycle_id}`);
  const outcome = detail.events.find((e) => e.type === "OutcomeEvaluated");
  const seen = detail.events.find((e) => e.type === "ObservationMade");
  const pairs = [];
  if (outcome && outcome.event.before_median !== null) {
    pairs.push(["before", Number(outcome.event.before_median.toFixed(2))]);
    pairs.push(["after", Number((outcome.event.after_median ?? 0).toFixed(2))]);
  } else if (seen) {
    pairs.push(["baseline", Number(seen.event.baseline.toFixed(2))]);
    pairs.push(["observed", Number(seen.event.current.toFixed(2))]);
  }
  box.replaceChildren(pairs.length ? bars(pairs, "") : empty("No measurements in this cycle."));
}

function cycles(list) {
  if (!list.length) return empty("No cycles yet: the loop opens one when a metric changes.");
  return h("ol", { class: "timeline" }, list.map((c) => {
    const chart = h("div", { class: "chart" });
    return h("li", {},
      h("p", {}, h("strong", {}, c.status), ` · ${when(c.observed_at)} · ${c.metric} went ${c.direction}`,
        c.playbook ? ` · ${c.playbook} on ${c.knob}` : ""),
      h("p", {}, c.explanation),
      h("button", { type: "button", onclick: () => cycleChart(c, chart).catch((e) => chart.replaceChildren(problemBox(e))) },
        "Before and after"), chart);
  }));
}

export async function loopPage(view) {
  const body = h("div");
  view.append(body);
  const refresh = async () => {
    const [mode, pending, recent] = await Promise.all([
      api("GET", "/v1/admin/config/ooda.mode"),
      api("GET", "/v1/ooda/decisions?status=pending"),
      api("GET", "/v1/ooda/cycles?limit=30"),
    ]);
    body.replaceChildren(modeSwitch(mode, refresh),
      h("section", { "aria-labelledby": "pending-title" }, h("h2", { id: "pending-title" }, "Waiting for you"),
        pending.length ? h("ul", { class: "decisions" }, pending.map((d) => decision(d, refresh)))
          : empty("No decision waits for an admin.")),
      h("section", { "aria-labelledby": "cycles-title" }, h("h2", { id: "cycles-title" }, "Cycles"), cycles(recent)));
  };
  await refresh();
}
