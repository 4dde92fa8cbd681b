// Tenants and keys (admins): create a tenant, issue a key (its secret shown once, with a copy
// button), list and revoke keys.
import { api, empty, field, h, problemBox, say, table, when } from "./lib.js";

function issued(key) {
  const secret = h("input", { readonly: true, value: key.api_key, id: "new-key", size: 60 });
  return h("div", { class: "ok", role: "alert" },
    h("p", {}, `New ${key.role} key ${key.key_id}: shown this once, store it now.`),
    field("API key", secret),
    h("button", { type: "button", onclick: async () => {
      secret.select();
      try {
        await navigator.clipboard.writeText(key.api_key);
        say("Copied.");
      } catch {
        say("Select the key and copy it by hand.");
      }
    } }, "Copy"));
}

async function keysOf(tenant, box, session) {
  const keys = await api("GET", `/v1/admin/tenants/${tenant.tenant_id}/keys`);
  const role = h("select", { name: "role" }, ["reader", "writer", "admin"].map((r) => h("option", { value: r }, r)));
  const fresh = h("div", { "aria-live": "polite" });
  const create = h("form", { class: "inline" }, field("Role", role), h("button", { type: "submit" }, "Create key"));
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const key = await api("POST", `/v1/admin/tenants/${tenant.tenant_id}/keys`, { role: role.value });
      await keysOf(tenant, box, session);
      box.prepend(issued(key));
    } catch (err) {
      fresh.replaceChildren(problemBox(err));
    }
  });
  const rows = keys.map((k) => [
    h("code", {}, k.key_id), k.role, when(k.created_at),
    k.revoked_at ? `revoked ${when(k.revoked_at)}` : "live",
    k.revoked_at || k.key_id === session.key_id ? "" : h("button", {
      type: "button", class: "danger", "aria-label": `Revoke key ${k.key_id}`,
      onclick: async () => {
        try {
          await api("DELETE", `/v1/admin/keys/${k.key_id}`);
          say(`Revoked ${k.key_id}.`);
          await keysOf(tenant, box, session);
        } catch (err) {
          fresh.replaceChildren(problemBox(err));
        }
      },
    }, "Revoke"),
  ]);
  box.replaceChildren(h("h2", {}, `Keys of ${tenant.name}`), create, fresh,
    rows.length ? table(["Key", "Role", "Created", "State", ""], rows) : empty("No keys yet: create one."));
}

export async function tenantsPage(view, session) {
  const list = h("div");
  const keys = h("section", { id: "keys" });
  const name = h("input", { name: "name", required: true, maxlength: 64, pattern: "[A-Za-z0-9][A-Za-z0-9._-]*" });
  const create = h("form", { class: "inline" }, field("New tenant", name), h("button", { type: "submit" }, "Create tenant"));
  const refresh = async () => {
    const tenants = await api("GET", "/v1/admin/tenants");
    list.replaceChildren(tenants.length ? table(["Tenant", "Id", "Created", ""], tenants.map((t) => [
      t.erased_at ? `${t.name} (erased)` : t.name, h("code", {}, t.tenant_id), when(t.created_at),
      h("button", { type: "button", "aria-label": `Keys of ${t.name}`, onclick: () => keysOf(t, keys, session) }, "Keys"),
    ])) : empty("No tenants."));
  };
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const tenant = await api("POST", "/v1/admin/tenants", { name: name.value });
      say(`Created tenant ${tenant.name}.`);
      name.value = "";
      await refresh();
      await keysOf(tenant, keys, session);
    } catch (err) {
      create.append(problemBox(err));
    }
  });
  view.append(create, list, keys);
  await refresh();
}
