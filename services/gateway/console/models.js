// Models: what the platform serves, each model's versions (what each added to storage and
// which tensors it shares), promotion history, and promoting a version.
import { api, bytes, empty, h, problemBox, say, short, table, when } from "./lib.js";

function versions(model, session, refresh) {
  if (!model.versions.length) return empty("No versions ingested: POST /v1/models.");
  return table(["Version", "Format", "Tensors", "Size", "Added to storage", "Shares tensors with", ""],
    model.versions.map((v) => [
      v.version === model.live_version ? h("strong", {}, `${v.version} (live)`) : v.version,
      v.format,
      String(v.tensors),
      bytes(v.size_bytes),
      `${v.new_tensors} tensors, ${bytes(v.new_bytes)}`,
      v.shared_with.length
        ? v.shared_with.map((s) => `${s.name} ${s.version}: ${s.tensors} (${bytes(s.bytes)})`).join("; ")
        : "none",
      session.role !== "admin" || v.version === model.live_version ? "" : h("button", {
        type: "button",
        onclick: async () => {
          try {
            await api("POST", `/v1/models/${encodeURIComponent(model.name)}/versions/${encodeURIComponent(v.version)}/promote`,
              { reason: "promoted in the console" });
            say(`${model.name} ${v.version} is live.`);
            await refresh();
          } catch (err) {
            say(err.message);
          }
        },
      }, "Promote"),
    ]));
}

function promotions(model) {
  if (!model.promotions.length) return empty("Never promoted.");
  return h("ol", { class: "timeline" }, model.promotions.map((p) =>
    h("li", {}, `${when(p.promoted_at)}: ${p.version}`,
      p.previous_version ? ` (was ${p.previous_version})` : "", p.reason ? ` — ${p.reason}` : "")));
}

export async function modelsPage(view, session) {
  const served = await api("GET", "/v1/models");
  view.append(h("section", { "aria-labelledby": "served-title" }, h("h2", { id: "served-title" }, "Served"),
    table(["Model", "Kind", "Version", "Context", "Ready"], served.data.map((m) =>
      [m.id, m.kind, m.version, String(m.context_length), m.ready ? "yes" : "loading"]))));
  const body = h("div");
  view.append(body);
  const refresh = async () => {
    body.replaceChildren();
    for (const card of served.data) {
      let model;
      try {
        model = await api("GET", `/v1/models/${encodeURIComponent(card.id)}`);
      } catch (err) {
        body.append(h("h2", {}, card.id), problemBox(err));
        continue;
      }
      const live = model.live ? ` · live ${model.live.version} (${short(model.live.manifest_atom_id)})` : "";
      body.append(h("section", { class: "model" }, h("h2", {}, `${model.name}${live}`),
        versions(model, session, refresh), h("h3", {}, "Promotions"), promotions(model)));
    }
  };
  await refresh();
}
