// The console's shell: sign in and out, the pages a role may see, and the hash router.
import { api, ApiError, h, problemBox, say, setCsrf } from "./lib.js";
import { billingPage } from "./billing.js";
import { documentsPage } from "./documents.js";
import { loopPage } from "./loop.js";
import { modelsPage } from "./models.js";
import { overviewPage } from "./overview.js";
import { searchPage } from "./search.js";
import { tenantsPage } from "./tenants.js";

const RANK = { reader: 0, writer: 1, admin: 2 };
const PAGES = [
  { path: "overview", title: "Overview", role: "admin", render: overviewPage },
  { path: "search", title: "Search", role: "reader", render: searchPage },
  { path: "documents", title: "Documents", role: "reader", render: documentsPage },
  { path: "models", title: "Models", role: "reader", render: modelsPage },
  { path: "loop", title: "Autonomous loop", role: "admin", render: loopPage },
  { path: "billing", title: "Billing", role: "reader", render: billingPage },
  { path: "tenants", title: "Tenants and keys", role: "admin", render: tenantsPage },
];

let session = null;
let leave = null; // what the current page does when it is left (closes its live feed)

function allowed(page) {
  return session && RANK[session.role] >= RANK[page.role];
}

function showSignIn(message) {
  session = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  document.getElementById("view").replaceChildren();
  document.getElementById("sign-in").hidden = false;
  document.getElementById("sign-in-error").textContent = message || "";
  document.getElementById("api-key").focus();
}

function showShell() {
  document.getElementById("sign-in").hidden = true;
  const nav = document.getElementById("nav");
  nav.replaceChildren(...PAGES.filter(allowed).map((p) =>
    h("a", { href: `#/${p.path}`, "data-page": p.path }, p.title)));
  nav.hidden = false;
  document.getElementById("who").textContent = `${session.role} · tenant ${session.tenant_id}`;
  document.getElementById("sign-out").hidden = false;
}

async function route() {
  if (!session) return;
  if (leave) leave();
  leave = null;
  const wanted = location.hash.replace(/^#\/?/, "");
  const fallback = PAGES.find(allowed);
  const page = PAGES.find((p) => p.path === wanted) || fallback;
  const view = document.getElementById("view");
  for (const link of document.querySelectorAll("#nav a")) {
    link.toggleAttribute("aria-current", link.dataset.page === page.path);
  }
  document.title = `${page.title} · Hartonomous`;
  if (!allowed(page)) {
    view.replaceChildren(h("h1", {}, page.title), problemBox(new ApiError(403, {
      title: "Forbidden", detail: `this page needs the ${page.role} role; you have ${session.role}`,
    })));
    return;
  }
  view.replaceChildren(h("h1", { tabindex: "-1" }, page.title));
  try {
    leave = await page.render(view, session);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return showSignIn("Your session ended: sign in again.");
    view.append(problemBox(err));
  }
}

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById("api-key");
  try {
    session = await api("POST", "/console/session", { api_key: input.value });
  } catch (err) {
    document.getElementById("sign-in-error").textContent = err.message;
    return;
  }
  input.value = "";
  setCsrf(session.csrf_token);
  showShell();
  await route();
  say(`Signed in as ${session.role}.`);
}

async function signOut() {
  try {
    await api("DELETE", "/console/session");
  } finally {
    if (leave) leave();
    leave = null;
    showSignIn("Signed out.");
  }
}

async function start() {
  document.getElementById("sign-in-form").addEventListener("submit", signIn);
  document.getElementById("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  try {
    session = await api("GET", "/console/session");
  } catch (err) {
    return showSignIn(err.message);
  }
  if (!session) return showSignIn();
  setCsrf(session.csrf_token);
  showShell();
  await route();
}

start();
