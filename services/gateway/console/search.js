// Search: query, mode and k; each result opens its document's provenance graph and the
// explain text.
import { api, empty, field, h, problemBox, short } from "./lib.js";
import { drawLineage } from "./graph.js";

async function provenance(result, panel) {
  panel.replaceChildren(h("h2", { id: "provenance-title", tabindex: "-1" },
    `Provenance of ${short(result.document_id)}`), h("p", { class: "muted" }, "Loading…"));
  panel.querySelector("h2").focus();
  try {
    const id = encodeURIComponent(result.document_id);
    const [lineage, explained] = await Promise.all([
      api("GET", `/v1/provenance/${id}?direction=upstream&depth=3`),
      api("GET", `/v1/provenance/${id}/explain`),
    ]);
    panel.replaceChildren(panel.firstChild, drawLineage(lineage),
      h("h3", {}, "Why it is here"), h("p", { class: "explain" }, explained.text));
  } catch (err) {
    panel.replaceChildren(panel.firstChild, problemBox(err));
  }
}

function results(reply, panel) {
  if (!reply.results.length) {
    return empty("Nothing matched. Try other words, another mode, or ingest documents first.");
  }
  return h("ol", { class: "results" }, reply.results.map((r) =>
    h("li", {},
      h("p", { class: "snippet" }, r.snippet),
      h("p", { class: "muted" }, `score ${r.score.toFixed(4)} · document ${short(r.document_id)} · chunk ${r.chunk_index}`),
      h("button", { type: "button", class: "open-provenance", onclick: () => provenance(r, panel) },
        "Provenance graph"))));
}

export async function searchPage(view) {
  const query = h("input", { type: "search", name: "query", required: true, maxlength: 4096 });
  const mode = h("select", { name: "mode" },
    ["hybrid", "dense", "sparse"].map((m) => h("option", { value: m }, m)));
  const k = h("input", { type: "number", name: "k", min: 1, max: 100, value: 10 });
  const out = h("div", { id: "search-results", "aria-live": "polite" });
  const panel = h("section", { id: "provenance", "aria-labelledby": "provenance-title" });
  const form = h("form", { class: "inline", role: "search" },
    field("Query", query), field("Mode", mode), field("Results (k)", k),
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    out.replaceChildren(h("p", { class: "muted" }, "Searching…"));
    panel.replaceChildren();
    try {
      const reply = await api("POST", "/v1/search",
        { query: query.value, mode: mode.value, k: Number(k.value) });
      out.replaceChildren(results(reply, panel));
    } catch (err) {
      out.replaceChildren(problemBox(err));
    }
  });
  view.append(form, out, panel);
  query.focus();
}
