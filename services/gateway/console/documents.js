// Documents: upload a file (with a progress bar), and the tenant's documents a page at a time.
import { api, bytes, empty, field, h, problemBox, say, short, table, upload, when } from "./lib.js";

function uploader(session, refresh) {
  const file = h("input", { type: "file", name: "file", required: true });
  const metadata = h("textarea", { name: "metadata", rows: 2, placeholder: '{"team": "docs"}' });
  const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
  const outcome = h("div", { "aria-live": "polite" });
  const form = h("form", {}, field("File", file), field("Metadata (JSON, optional)", metadata),
    h("button", { type: "submit" }, "Upload"), progress, outcome);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file.files.length) return;
    const data = new FormData();
    if (metadata.value.trim()) data.append("metadata", metadata.value.trim());
    data.append("file", file.files[0]);
    progress.hidden = false;
    progress.value = 0;
    outcome.replaceChildren();
    try {
      const created = await upload("/v1/atoms", data, (share) => { progress.value = share; });
      progress.value = 1;
      const dedup = created.deduplicated ? "already stored: only referenced" : "stored";
      outcome.replaceChildren(h("p", { class: "ok" },
        `${file.files[0].name}: ${dedup}, ${created.chunks} chunks, atom ${short(created.atom_id)}.`));
      say(`Uploaded ${file.files[0].name}.`);
      form.reset();
      await refresh();
    } catch (err) {
      outcome.replaceChildren(problemBox(err));
    }
  });
  return h("section", { "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, "Upload"), session.role === "reader"
      ? h("p", { class: "muted" }, "Uploading needs a writer or admin key.") : form);
}

function listing(session, page, refresh) {
  if (!page.atoms.length) return empty("No documents yet: upload one above, or POST /v1/atoms.");
  return table(["Document", "Source", "Type", "Size", "Chunks", "Stored", ""], page.atoms.map((a) => [
    h("code", { title: a.atom_id }, short(a.atom_id)),
    a.source_uri || "—",
    a.mime_type || a.modality,
    bytes(a.size_bytes),
    String(a.chunks.length),
    when(a.created_at),
    session.role === "reader" ? "" : h("button", {
      type: "button", class: "danger", "aria-label": `Delete ${a.source_uri || a.atom_id}`,
      onclick: async () => {
        if (!window.confirm(`Delete ${a.source_uri || a.atom_id}? It leaves search at once.`)) return;
        try {
          await api("DELETE", `/v1/atoms/${a.atom_id}?reason=${encodeURIComponent("deleted in the console")}`);
          say("Deleted.");
          await refresh();
        } catch (err) {
          say(err.message);
        }
      },
    }, "Delete"),
  ]));
}

export async function documentsPage(view, session) {
  const list = h("div");
  const more = h("div");
  const load = async (after = "") => {
    try {
      const page = await api("GET", `/v1/atoms?limit=50${after ? `&after=${after}` : ""}`);
      if (!after) list.replaceChildren();
      list.append(listing(session, page, () => load()));
      more.replaceChildren(page.next_after
        ? h("button", { type: "button", onclick: () => load(page.next_after) }, "More") : "");
    } catch (err) {
      list.replaceChildren(problemBox(err));
    }
  };
  view.append(uploader(session, () => load()),
    h("section", { "aria-labelledby": "list-title" }, h("h2", { id: "list-title" }, "Your documents"), list, more));
  await load();
}
