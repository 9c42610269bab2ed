// The agent console: the inbox (queued sessions and the agent's own, across
// tenants, with unread counts) kept current by the live connection, and the
// selected conversation with claim, transfer and close.

import { Api, ApiError } from "./api";
import type { Session } from "./api";
import { connectionBadge, header, languagePicker } from "./chrome";
import { Conversation } from "./conversation";
import { h, setChildren, uid } from "./dom";
import { formatWhen, t } from "./i18n";
import { Realtime } from "./realtime";
import type { Frame } from "./realtime";
import { SUPPORT_AGENT } from "./token";
import type { Me } from "./token";

const PRESENCE_EVERY_MS = 5_000;
const OFFLINE_POLL_MS = 4_000;
const INBOX_DEBOUNCE_MS = 250;

export class AgentConsole {
  readonly root: HTMLElement;
  private readonly rt: Realtime;
  private sessions: Session[] = [];
  private readonly followed = new Set<string>();
  private selected: Conversation | null = null;
  private online = true;
  private presenceTimer: number | undefined;
  private pollTimer: number | undefined;
  private refreshTimer: number | undefined;
  private wasDisconnected = false;
  private readonly inboxList: HTMLUListElement;
  private readonly inboxNote: HTMLParagraphElement;
  private readonly pane: HTMLElement;
  private readonly presenceButton: HTMLButtonElement;
  private readonly presenceNote: HTMLParagraphElement;

  constructor(
    private readonly me: Me,
    private readonly api: Api,
    private readonly rerender: () => void,
    signOut: () => void,
  ) {
    // The ticket's tenant only authorises the stream; sessions name their own.
    const agentTenant = [...me.tenants].find(([, roles]) => roles.includes(SUPPORT_AGENT))?.[0];
    this.rt = new Realtime(api, agentTenant ?? me.tenants.keys().next().value ?? 1);
    this.presenceButton = h("button", {
      type: "button",
      class: "presence",
      role: "switch",
      "aria-checked": "true",
      "aria-label": t("presenceLabel"),
      onclick: () => void this.setOnline(!this.online),
    });
    this.presenceNote = h("p", { class: "presence-note", hidden: true }, t("presenceOfflineHelp"));
    this.inboxList = h("ul", { class: "inbox-list" });
    this.inboxNote = h("p", { class: "empty", role: "status" });
    this.pane = h("section", { class: "pane", "aria-label": t("messagesLabel") }, h("p", { class: "empty" }, t("pickSession")));
    this.root = h(
      "div",
      { class: "app console" },
      header(
        t("consoleTitle"),
        t("agentN", { n: me.userId }),
        this.presenceButton,
        connectionBadge(this.rt),
        languagePicker(rerender),
        h("button", { type: "button", onclick: signOut }, t("signOut")),
      ),
      this.presenceNote,
      h(
        "main",
        { class: "split" },
        h(
          "nav",
          { class: "inbox", "aria-labelledby": "inbox-title" },
          h(
            "div",
            { class: "inbox-head" },
            h("h2", { id: "inbox-title" }, t("inbox")),
            h("button", { type: "button", onclick: () => void this.refresh() }, t("refresh")),
          ),
          this.inboxNote,
          this.inboxList,
        ),
        this.pane,
      ),
    );
    this.rt.onFrame((frame) => this.onFrame(frame));
    this.rt.onState((state) => {
      if (state === "reconnecting") this.wasDisconnected = true;
      // Events may have been missed while disconnected: the inbox is re-read.
      if (state === "online" && this.wasDisconnected) {
        this.wasDisconnected = false;
        this.scheduleRefresh();
      }
    });
    this.renderPresence();
  }

  async start(): Promise<void> {
    this.rt.watchInbox();
    this.rt.start();
    this.heartbeat();
    await this.refresh();
  }

  stop(): void {
    this.rt.pause();
    window.clearInterval(this.presenceTimer);
    window.clearInterval(this.pollTimer);
    this.selected?.destroy(false);
  }

  private onFrame(frame: Frame): void {
    if (frame.type !== "event") return;
    if (frame.event === "session.updated") {
      this.selected?.setSession(frame.data);
      this.scheduleRefresh();
    } else if (frame.event === "message.created") {
      this.scheduleRefresh();
    }
  }

  private scheduleRefresh(): void {
    window.clearTimeout(this.refreshTimer);
    this.refreshTimer = window.setTimeout(() => void this.refresh(), INBOX_DEBOUNCE_MS);
  }

  /** Re-reads the inbox; the server counts unread messages. */
  async refresh(): Promise<void> {
    try {
      const page = await this.api.inbox();
      this.sessions = page.items;
      this.inboxNote.textContent = page.items.length ? "" : t("inboxEmpty");
    } catch (err) {
      this.inboxNote.textContent = t("actionFailed", { reason: err instanceof ApiError ? err.describe() : "" });
      return;
    }
    const open = this.selected?.session.id;
    // Every inbox session is followed, for its messages (and so its unread count).
    const listed = new Set(this.sessions.map((s) => s.id));
    for (const id of this.followed) {
      if (!listed.has(id) && id !== open) this.rt.unsubscribe(id);
      if (!listed.has(id)) this.followed.delete(id);
    }
    for (const s of this.sessions) {
      if (!this.rt.isSubscribed(s.id)) this.rt.subscribe(s.id, s.tenant_id);
      this.followed.add(s.id);
    }
    this.renderInbox(open);
  }

  private renderInbox(open: string | undefined): void {
    const items = this.sessions.map((s) => {
      const unread = s.id === open && document.visibilityState === "visible" ? 0 : (s.unread_count ?? 0);
      const queued = s.agent_id === undefined;
      return h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: "inbox-item",
            "data-session": s.id,
            "aria-current": s.id === open ? "true" : undefined,
            onclick: () => void this.select(s),
          },
          h("span", { class: "who" }, t("userN", { n: s.opened_by ?? "?" })),
          h("span", { class: "tenant" }, t("tenantN", { n: s.tenant_id })),
          h("span", { class: `tag ${queued ? "queued" : "mine"}` }, queued ? t("queued") : t("mine")),
          h("time", { datetime: s.updated_at }, formatWhen(s.updated_at)),
          unread > 0 ? h("span", { class: "unread", "aria-label": t("unread", { n: unread }) }, String(unread)) : null,
        ),
      );
    });
    setChildren(this.inboxList, ...items);
  }

  private async select(s: Session): Promise<void> {
    if (this.selected?.session.id === s.id) return;
    const previous = this.selected;
    if (previous) previous.destroy(this.sessions.some((x) => x.id === previous.session.id));
    const status = h("p", { class: "session-status", role: "status" });
    const actions = h("div", { class: "actions" });
    const problem = h("p", { class: "problem", role: "alert" });
    const conversation = new Conversation({
      api: this.api,
      rt: this.rt,
      me: this.me.userId,
      session: s,
      search: true,
      onSession: (next) => this.describe(next, status, actions, problem, conversation),
    });
    this.selected = conversation;
    setChildren(
      this.pane,
      h(
        "div",
        { class: "pane-head" },
        h("button", { type: "button", class: "back", onclick: () => this.back() }, t("back")),
        h("h2", {}, `${t("userN", { n: s.opened_by ?? "?" })} · ${t("tenantN", { n: s.tenant_id })}`),
        status,
        actions,
      ),
      problem,
      conversation.root,
    );
    this.root.classList.add("showing-conversation");
    this.describe(s, status, actions, problem, conversation);
    this.renderInbox(s.id);
    await conversation.start();
  }

  private back(): void {
    this.root.classList.remove("showing-conversation");
    this.inboxList.querySelector<HTMLButtonElement>("[aria-current]")?.focus();
  }

  /** The status line and the actions the session allows now. */
  private describe(s: Session, status: HTMLElement, actions: HTMLElement, problem: HTMLElement, c: Conversation): void {
    status.textContent =
      s.status === "CLOSED"
        ? t("sessionClosed")
        : s.agent_id === undefined
          ? t("sessionQueued")
          : t("sessionWith", { agent: s.agent_id === this.me.userId ? t("you") : t("agentN", { n: s.agent_id }) });
    status.dataset.status = s.status;
    const act = async (run: () => Promise<Session>) => {
      problem.textContent = "";
      try {
        c.setSession(await run());
        this.scheduleRefresh();
      } catch (err) {
        problem.textContent =
          err instanceof ApiError && err.status === 409
            ? t("claimedByOther")
            : err instanceof ApiError && err.code === "agent_offline"
              ? t("agentOfflineErr")
              : t("actionFailed", { reason: err instanceof ApiError ? err.describe() : t("errNetwork") });
      }
    };
    const buttons: HTMLElement[] = [];
    if (s.status === "OPEN") {
      if (s.agent_id !== this.me.userId) {
        buttons.push(
          h("button", { type: "button", class: "primary", onclick: () => void act(() => this.api.sessionAction(s.tenant_id, s.id, "claim")) }, t("claim")),
        );
      }
      const targetId = uid("transfer");
      const target = h("input", { id: targetId, type: "number", min: 1, inputmode: "numeric", required: true });
      const transfer = h(
        "form",
        {
          class: "transfer",
          hidden: true,
          onsubmit: (ev: Event) => {
            ev.preventDefault();
            void act(() => this.api.sessionAction(s.tenant_id, s.id, "transfer", { agent_id: Number(target.value) }));
          },
        },
        h("label", { for: targetId }, t("transferTo")),
        target,
        h("button", { type: "submit" }, t("transferGo")),
        h("button", { type: "button", onclick: () => ((transfer.hidden = true), (problem.textContent = "")) }, t("cancel")),
      );
      const confirm = h(
        "div",
        { class: "confirm", hidden: true, role: "group" },
        h("span", {}, t("confirmClose")),
        h("button", { type: "button", class: "danger", onclick: () => void act(() => this.api.sessionAction(s.tenant_id, s.id, "close")) }, t("close")),
        h("button", { type: "button", onclick: () => (confirm.hidden = true) }, t("cancel")),
      );
      buttons.push(
        h("button", { type: "button", onclick: () => ((transfer.hidden = false), target.focus()) }, t("transfer")),
        h("button", { type: "button", class: "danger", onclick: () => (confirm.hidden = false) }, t("close")),
        transfer,
        confirm,
      );
    }
    setChildren(actions, ...buttons);
  }

  /** Online: the live connection plus a presence heartbeat. Offline: neither, and polling instead. */
  private async setOnline(online: boolean): Promise<void> {
    this.online = online;
    this.renderPresence();
    window.clearInterval(this.pollTimer);
    if (online) {
      this.rt.start();
      this.heartbeat();
    } else {
      window.clearInterval(this.presenceTimer);
      // The server counts a live stream as presence, so going offline closes it.
      this.rt.pause();
      await this.api.presence(false).catch(() => undefined);
      this.pollTimer = window.setInterval(() => {
        void this.refresh();
        void this.selected?.poll();
      }, OFFLINE_POLL_MS);
    }
  }

  private heartbeat(): void {
    window.clearInterval(this.presenceTimer);
    const beat = () => void this.api.presence(true).catch(() => undefined);
    beat();
    this.presenceTimer = window.setInterval(beat, PRESENCE_EVERY_MS);
  }

  private renderPresence(): void {
    this.presenceButton.setAttribute("aria-checked", String(this.online));
    this.presenceButton.dataset.online = String(this.online);
    this.presenceButton.textContent = this.online ? t("presenceOnline") : t("presenceOffline");
    this.presenceNote.hidden = this.online;
  }
}
