// The parts of the page both screens share: the header with the connection
// state, the language choice and signing out.

import { h } from "./dom";
import { LANGS, lang, setLang, t } from "./i18n";
import type { Key, Lang } from "./i18n";
import type { ConnState, Realtime } from "./realtime";

const STATE_TEXT: Record<ConnState, Key> = {
  connecting: "connConnecting",
  online: "connOnline",
  reconnecting: "connReconnecting",
  paused: "connPaused",
  expired: "connExpired",
};

/** A pill that always says, in words and colour, whether the live connection holds. */
export function connectionBadge(rt: Realtime): HTMLElement {
  const badge = h("span", { class: "conn", role: "status", "aria-live": "polite", "data-state": rt.state });
  rt.onState((state) => {
    badge.dataset.state = state;
    badge.textContent = t(STATE_TEXT[state]);
  });
  return badge;
}

export function languagePicker(onChange: () => void): HTMLElement {
  const names: Record<Lang, string> = { id: "Indonesia", en: "English" };
  const select = h(
    "select",
    {
      id: "lang",
      onchange: () => {
        setLang(select.value as Lang);
        onChange();
      },
    },
    ...LANGS.map((l) => h("option", { value: l, selected: l === lang() }, names[l])),
  );
  return h("div", { class: "lang" }, h("label", { for: "lang", class: "visually-hidden" }, t("language")), select);
}

export function header(title: string, who: string, ...extra: (HTMLElement | null)[]): HTMLElement {
  return h(
    "header",
    { class: "topbar" },
    h("h1", {}, title),
    h("span", { class: "whoami" }, who),
    h("div", { class: "tools" }, ...extra),
  );
}
