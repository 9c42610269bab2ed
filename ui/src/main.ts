// Entry point: find the token (URL fragment or this tab's storage, else ask
// for one), then show the agent console to agents and the widget to everyone
// else. Everything after that goes through the public API.

import "./style.css";
import { Api } from "./api";
import { AgentConsole } from "./console";
import { h, setChildren, uid } from "./dom";
import { t } from "./i18n";
import { forgetToken, isAgent, parseToken, storeToken, takeToken } from "./token";
import type { Me } from "./token";
import { TenantWidget, tenantPicker } from "./widget";

type Screen = { root: HTMLElement; start(): Promise<void>; stop(): void };

const TENANT_KEY = "livechat.tenant";
const mount = document.getElementById("app") ?? document.body;
let screen: Screen | null = null;

function show(next: Screen | null, fallback?: HTMLElement): void {
  screen?.stop();
  screen = next;
  setChildren(mount, next?.root ?? fallback);
  document.title = `${t("appTitle")} · ${next ? document.querySelector("h1")?.textContent ?? "" : t("signInTitle")}`;
  void next?.start();
}

function signOut(): void {
  forgetToken();
  signIn();
}

function signIn(problem = ""): void {
  const fieldId = uid("token");
  const input = h("textarea", { id: fieldId, rows: 4, required: true, spellcheck: "false", autocomplete: "off" });
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        const me = parseToken(input.value);
        if (!me) {
          signIn(t("badToken"));
          return;
        }
        storeToken(me.token);
        start(me);
      },
    },
    h("h1", {}, t("signInTitle")),
    h("p", {}, t("signInHelp")),
    h("label", { for: fieldId }, t("tokenLabel")),
    input,
    problem ? h("p", { class: "problem", role: "alert" }, problem) : null,
    h("button", { type: "submit", class: "primary" }, t("signIn")),
  );
  show(null, h("main", { class: "app signin-page" }, form));
  input.focus();
}

function start(me: Me): void {
  const api = new Api(me.token);
  api.onUnauthorized = () => {
    forgetToken();
    signIn(t("expiredToken"));
  };
  const rerender = () => start(me);
  if (isAgent(me)) {
    show(new AgentConsole(me, api, rerender, signOut));
    return;
  }
  const tenants = [...me.tenants.keys()].sort((a, b) => a - b);
  const remembered = Number(sessionStorage.getItem(TENANT_KEY));
  const tenant = tenants.includes(remembered) ? remembered : tenants[0];
  if (tenant === undefined) {
    forgetToken();
    signIn(t("noTenant"));
    return;
  }
  const picker = tenantPicker(tenants, tenant, (next) => {
    sessionStorage.setItem(TENANT_KEY, String(next));
    start(me);
  });
  show(new TenantWidget(me, api, tenant, rerender, signOut, picker));
}

const raw = takeToken();
const me = raw ? parseToken(raw) : null;
if (me) start(me);
else signIn(raw ? t("badToken") : "");
