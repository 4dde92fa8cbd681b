// Billing: quotas and what is left of them, usage by operation and by day (as bars), invoices;
// admins pick any tenant.
import { api, bars, empty, field, h, problemBox, table, when } from "./lib.js";

function byOperation(usage) {
  if (!usage.lines.length) return empty("No usage yet: it appears as soon as you ingest or search.");
  return table(["Operation", "Unit", "Quantity", "Events", `Cost (${usage.currency || "—"})`],
    usage.lines.map((l) => [l.operation, l.unit, l.quantity, String(l.events), l.cost]));
}

function byDay(usage) {
  if (!usage.lines.length) return empty("No usage by day yet.");
  const events = new Map();
  for (const l of usage.lines) events.set(l.day, (events.get(l.day) || 0) + l.events);
  return bars([...events.entries()].sort(), "events");
}

function quotas(list) {
  if (!list.length) return empty("No quotas: usage is not limited. An admin sets them with PUT /v1/admin/tenants/{tenant}/quota.");
  return table(["Operation", "Period", "Used", "Limit", "Left", ""], list.map((q) => {
    const share = Math.min(Number(q.used) / Math.max(Number(q.limit), 1e-12), 1);
    const meter = h("meter", { min: 0, max: 1, low: 0.8, high: 0.95, optimum: 0, value: share,
      "aria-label": `${q.operation}: ${Math.round(share * 100)}% used` });
    return [q.operation === "*" ? `spend (${q.unit})` : `${q.operation} (${q.unit})`, q.period,
      q.used, q.limit, h("strong", {}, q.left),
      h("span", {}, meter, q.soft_limit_reached ? h("span", { class: "error" }, " past the soft limit") : "")];
  }));
}

function invoices(list) {
  if (!list.invoices.length) return empty("No invoices yet: one is issued per closed period.");
  return table(["Invoice", "Period", "Issued", "Total"], list.invoices.map((i) => [
    i.invoice_id, `${when(i.period_start)} – ${when(i.period_end)}`, when(i.issued_at), `${i.total} ${i.currency}`]));
}

export async function billingPage(view, session) {
  const body = h("div");
  const show = async (tenant) => {
    const suffix = tenant ? `&tenant=${encodeURIComponent(tenant)}` : "";
    try {
      const [ops, days, limits, bills] = await Promise.all([
        api("GET", `/v1/usage?group_by=operation${suffix}`),
        api("GET", `/v1/usage?group_by=day${suffix}`),
        api("GET", `/v1/quotas?${suffix.slice(1)}`),
        api("GET", "/v1/invoices"),
      ]);
      body.replaceChildren(
        h("p", {}, `Tenant ${ops.tenant_id}: total ${ops.total_cost} ${ops.currency}`),
        h("h2", {}, "Quotas"), quotas(limits),
        h("h2", {}, "By operation"), byOperation(ops),
        h("h2", {}, "By day"), byDay(days),
        h("h2", {}, "Your invoices"), invoices(bills));
    } catch (err) {
      body.replaceChildren(problemBox(err));
    }
  };
  if (session.role === "admin") {
    const tenants = await api("GET", "/v1/admin/tenants");
    const pick = h("select", { name: "tenant", id: "billing-tenant" }, tenants.map((t) =>
      h("option", { value: t.tenant_id, selected: t.tenant_id === session.tenant_id }, t.name)));
    pick.addEventListener("change", () => show(pick.value));
    view.append(field("Tenant", pick));
  }
  view.append(body);
  await show("");
}
