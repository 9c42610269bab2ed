// One session's conversation, shared by the agent console and the tenant
// widget: history that grows upward as the viewer scrolls (cursor pages),
// live messages and typing, optimistic sends that can be retried without ever
// creating a duplicate, "seen" from the other side's read marks, and the
// input locked once the session is closed.

import { Api, ApiError } from "./api";
import type { ChatMessage, Session } from "./api";
import { h, randomKey, setChildren, uid } from "./dom";
import { formatFull, formatWhen, t } from "./i18n";
import type { Frame, Realtime } from "./realtime";

const PAGE = 30;
const TYPING_SEND_EVERY_MS = 1500;
const TYPING_SHOWN_MS = 3500;
const NEAR_BOTTOM_PX = 48;

/** A message on its way: shown at once, kept (with its key) until the server has it. */
type Pending = {
  localId: string;
  key: string;
  raw: string;
  text: string;
  state: "sending" | "failed";
  reason?: string;
  at: string;
};

export type ConversationOptions = {
  api: Api;
  rt: Realtime;
  me: number;
  session: Session;
  /** Agents get the search panel. */
  search: boolean;
  /** Called whenever the session changes (claimed, transferred, closed). */
  onSession: (session: Session) => void;
};

export class Conversation {
  readonly root: HTMLElement;
  session: Session;
  private readonly api: Api;
  private readonly rt: Realtime;
  private readonly me: number;
  private readonly messages = new Map<string, ChatMessage>();
  private pendings: Pending[] = [];
  private readonly rendered = new Map<string, { sig: string; el: HTMLLIElement }>();
  private readonly othersRead = new Map<number, string>();
  private readonly agents = new Set<number>();
  private olderCursor: string | undefined;
  private hasOlder = false;
  private loadingOlder = false;
  private loadedOnce = false;
  private lastMarked: string | undefined;
  private lastTypingSent = 0;
  private readonly typingTimers = new Map<number, number>();
  private readonly list: HTMLOListElement;
  private readonly olderButton: HTMLButtonElement;
  private readonly typingLine: HTMLParagraphElement;
  private readonly lockNotice: HTMLParagraphElement;
  private readonly input: HTMLTextAreaElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly searchPanel: SearchPanel | null;
  private readonly observer: IntersectionObserver;
  private readonly resize: ResizeObserver;
  private stickToBottom = true;
  private readonly unlisten: () => void;
  private readonly onVisible = () => this.markRead();

  constructor(private readonly opts: ConversationOptions) {
    this.api = opts.api;
    this.rt = opts.rt;
    this.me = opts.me;
    this.session = opts.session;
    if (this.session.agent_id) this.agents.add(this.session.agent_id);

    this.olderButton = h("button", { type: "button", class: "older", onclick: () => void this.loadOlder() }, t("olderLoad"));
    this.list = h("ol", { class: "messages", role: "log", "aria-label": t("messagesLabel"), tabindex: 0 });
    this.typingLine = h("p", { class: "typing", "aria-live": "polite" });
    this.lockNotice = h("p", { class: "locked", role: "status", hidden: true }, t("lockedClosed"));
    const inputId = uid("compose");
    this.input = h("textarea", {
      id: inputId,
      rows: 2,
      placeholder: t("composePlaceholder"),
      maxlength: 4000,
      autocomplete: "off",
      oninput: () => this.typing(),
      onkeydown: (ev: Event) => this.composerKey(ev as KeyboardEvent),
    });
    this.sendButton = h("button", { type: "submit", class: "primary" }, t("send"));
    const form = h(
      "form",
      { class: "composer", onsubmit: (ev: Event) => this.submit(ev) },
      h("label", { for: inputId, class: "visually-hidden" }, t("composeLabel")),
      this.input,
      this.sendButton,
    );
    this.searchPanel = opts.search ? new SearchPanel(this.api, () => this.session, (m) => this.label(m.sender_id)) : null;
    this.root = h(
      "div",
      { class: "conversation" },
      this.searchPanel?.root,
      h("div", { class: "scroller" }, this.olderButton, this.list),
      this.typingLine,
      this.lockNotice,
      form,
    );
    this.observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) void this.loadOlder();
      },
      { root: this.root.querySelector(".scroller"), rootMargin: "120px 0px 0px 0px" },
    );
    // The viewer at the newest message stays there when the space changes
    // (a phone keyboard opening, the closed notice appearing).
    const scroller = this.scroller();
    scroller.addEventListener("scroll", () => {
      this.stickToBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
    });
    this.resize = new ResizeObserver(() => {
      if (this.stickToBottom) scroller.scrollTop = scroller.scrollHeight;
    });
    this.resize.observe(scroller);
    this.unlisten = this.rt.onFrame((frame) => this.onFrame(frame));
    document.addEventListener("visibilitychange", this.onVisible);
    this.applySession();
  }

  /** Loads the newest page, then subscribes from the newest message it holds. */
  async start(): Promise<void> {
    await this.loadLatest();
    const newest = this.newest();
    this.rt.subscribe(this.session.id, this.session.tenant_id, newest?.id);
    if (newest) this.rt.seed(this.session.id, newest.id);
    this.observer.observe(this.olderButton);
    this.input.focus();
  }

  /** Stops listening; keeps the subscription if `keepSubscription` (the inbox still wants it). */
  destroy(keepSubscription: boolean): void {
    this.unlisten();
    this.observer.disconnect();
    this.resize.disconnect();
    document.removeEventListener("visibilitychange", this.onVisible);
    if (!keepSubscription) this.rt.unsubscribe(this.session.id);
    for (const timer of this.typingTimers.values()) window.clearTimeout(timer);
  }

  /** Takes a newer view of the session (from an action or an event). */
  setSession(session: Session): void {
    if (session.id !== this.session.id) return;
    if (session.updated_at < this.session.updated_at) return;
    this.session = session;
    if (session.agent_id) this.agents.add(session.agent_id);
    this.applySession();
    this.opts.onSession(session);
  }

  /** Catches up over HTTP (used while the live connection is off). */
  async poll(): Promise<void> {
    const newest = this.newest();
    try {
      this.setSession(await this.api.session(this.session.tenant_id, this.session.id));
      if (!newest) {
        await this.loadLatest();
        return;
      }
      const page = await this.api.messages(this.session.tenant_id, this.session.id, {
        cursor: newest.id,
        direction: "after",
        limit: 100,
      });
      this.merge(page.items, "append");
    } catch {
      // The next poll tries again; the connection state says what is wrong.
    }
  }

  private get closed(): boolean {
    return this.session.status === "CLOSED";
  }

  private applySession(): void {
    this.input.disabled = this.closed;
    this.sendButton.disabled = this.closed;
    this.lockNotice.hidden = !this.closed;
    this.root.classList.toggle("is-closed", this.closed);
  }

  private onFrame(frame: Frame): void {
    if (frame.type === "subscribed" && frame.session_id === this.session.id) {
      // Subscribed without a position (an empty session): fetch what may have
      // been written before the subscription took hold.
      if (!this.rt.lastEventId(this.session.id)) void this.loadLatest();
      return;
    }
    if (frame.type === "unsubscribed" && frame.session_id === this.session.id && frame.reason === "session_closed") {
      if (!this.closed) void this.poll();
      return;
    }
    if (frame.type !== "event" || frame.session_id !== this.session.id) return;
    switch (frame.event) {
      case "message.created":
        this.stopTyping(frame.data.sender_id);
        this.merge([frame.data], "append");
        break;
      case "session.updated":
        this.setSession(frame.data);
        break;
      case "typing":
        if (frame.data.user_id !== this.me) this.showTyping(frame.data.user_id);
        break;
      case "read":
        if (frame.data.user_id !== this.me) {
          this.othersRead.set(frame.data.user_id, frame.data.message_id);
          this.render("keep");
        }
        break;
      default:
        break;
    }
  }

  private async loadLatest(): Promise<void> {
    try {
      const page = await this.api.messages(this.session.tenant_id, this.session.id, { limit: PAGE });
      if (!this.loadedOnce) {
        this.loadedOnce = true;
        this.hasOlder = page.pagination?.has_next ?? false;
        this.olderCursor = page.pagination?.next_cursor;
      }
      this.merge(page.items, "bottom");
    } catch (err) {
      this.showError(err);
    }
  }

  private async loadOlder(): Promise<void> {
    if (!this.hasOlder || this.loadingOlder || !this.olderCursor) return;
    this.loadingOlder = true;
    this.updateOlderButton();
    try {
      const page = await this.api.messages(this.session.tenant_id, this.session.id, {
        limit: PAGE,
        cursor: this.olderCursor,
        direction: "before",
      });
      this.hasOlder = page.pagination?.has_next ?? false;
      this.olderCursor = page.pagination?.next_cursor;
      this.merge(page.items, "prepend");
    } catch (err) {
      this.showError(err);
    } finally {
      this.loadingOlder = false;
      this.updateOlderButton();
    }
    // Still at the top (a short page): keep filling.
    const scroller = this.scroller();
    if (this.hasOlder && scroller.scrollTop < 40) window.setTimeout(() => void this.loadOlder(), 50);
  }

  private updateOlderButton(): void {
    this.olderButton.disabled = !this.hasOlder || this.loadingOlder;
    this.olderButton.textContent = this.loadingOlder ? t("olderLoading") : this.hasOlder ? t("olderLoad") : t("olderNone");
    this.olderButton.classList.toggle("at-start", !this.hasOlder);
  }

  /** Adds messages (deduplicated by id) and settles matching optimistic sends. */
  private merge(items: ChatMessage[], anchor: "append" | "prepend" | "bottom"): void {
    for (const m of items) {
      if (m.session_id !== this.session.id) continue;
      this.messages.set(m.id, m);
      if (m.sender_id === this.me) {
        // The stream can deliver our own message before the POST answers.
        const i = this.pendings.findIndex((p) => p.state === "sending" && p.text === m.message);
        if (i >= 0) this.pendings.splice(i, 1);
      }
    }
    this.render(anchor);
    this.markRead();
  }

  private newest(): ChatMessage | undefined {
    let best: ChatMessage | undefined;
    for (const m of this.messages.values()) if (!best || m.created_at > best.created_at) best = m;
    return best;
  }

  private scroller(): HTMLElement {
    return this.list.parentElement ?? this.list;
  }

  private label(sender: number): string {
    if (sender === this.me) return t("you");
    return this.agents.has(sender) ? t("agentN", { n: sender }) : t("userN", { n: sender });
  }

  /** The newest of my messages the other side has read up to. */
  private seenId(): string | undefined {
    let mark: string | undefined;
    for (const id of this.othersRead.values()) {
      const m = this.messages.get(id);
      if (m && (!mark || m.created_at > mark)) mark = m.created_at;
    }
    if (!mark) return undefined;
    let seen: ChatMessage | undefined;
    for (const m of this.messages.values()) {
      if (m.sender_id === this.me && m.created_at <= mark && (!seen || m.created_at > seen.created_at)) seen = m;
    }
    return seen?.id;
  }

  /** Redraws the list, keeping the viewer's place: `prepend` holds the distance to the bottom. */
  private render(anchor: "append" | "prepend" | "bottom" | "keep"): void {
    const scroller = this.scroller();
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    const atBottom = fromBottom - scroller.clientHeight < NEAR_BOTTOM_PX;
    const seen = this.seenId();
    const ordered = [...this.messages.values()].sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
    const nodes: HTMLLIElement[] = [];
    const live = new Set<string>();
    for (const m of ordered) {
      const sig = `${m.id === seen}|${this.label(m.sender_id)}`;
      nodes.push(this.cached(m.id, sig, () => this.messageItem(m, m.id === seen)));
      live.add(m.id);
    }
    for (const p of this.pendings) {
      nodes.push(this.cached(p.localId, `${p.state}|${p.reason ?? ""}`, () => this.pendingItem(p)));
      live.add(p.localId);
    }
    for (const key of [...this.rendered.keys()]) if (!live.has(key)) this.rendered.delete(key);
    this.place(nodes);
    this.updateOlderButton();
    if (anchor === "bottom" || (anchor === "append" && atBottom)) {
      scroller.scrollTop = scroller.scrollHeight;
    } else if (anchor === "prepend") {
      scroller.scrollTop = scroller.scrollHeight - fromBottom;
    }
  }

  /**
   * Puts `nodes` in the list with as few moves as possible: clearing and
   * refilling it would drop the browser's scroll anchor and the focus.
   */
  private place(nodes: HTMLLIElement[]): void {
    const wanted = new Set<Node>(nodes);
    for (const child of [...this.list.children]) if (!wanted.has(child)) child.remove();
    nodes.forEach((node, i) => {
      const at = this.list.children[i];
      if (at !== node) this.list.insertBefore(node, at ?? null);
    });
  }

  private cached(key: string, sig: string, make: () => HTMLLIElement): HTMLLIElement {
    const hit = this.rendered.get(key);
    if (hit && hit.sig === sig) return hit.el;
    const el = make();
    this.rendered.set(key, { sig, el });
    return el;
  }

  private messageItem(m: ChatMessage, seen: boolean): HTMLLIElement {
    const mine = m.sender_id === this.me;
    return h(
      "li",
      { class: `msg ${mine ? "mine" : "theirs"}`, "data-id": m.id, "data-state": "sent", "data-sender": m.sender_id },
      h("span", { class: "who" }, this.label(m.sender_id)),
      // Text, never markup: whatever the message says is shown as characters.
      h("p", { class: "text" }, m.message),
      h(
        "span",
        { class: "meta" },
        h("time", { datetime: m.created_at, title: formatFull(m.created_at) }, formatWhen(m.created_at)),
        seen ? h("span", { class: "seen" }, ` · ${t("seen")}`) : null,
      ),
    );
  }

  private pendingItem(p: Pending): HTMLLIElement {
    const failed = p.state === "failed";
    return h(
      "li",
      { class: `msg mine ${p.state}`, "data-state": p.state, "data-key": p.key },
      h("span", { class: "who" }, t("you")),
      h("p", { class: "text" }, p.text),
      h(
        "span",
        { class: "meta", role: failed ? "alert" : undefined },
        failed ? `${t("failed")}: ${p.reason ?? ""}` : t("sending"),
        failed ? h("button", { type: "button", class: "retry", onclick: () => void this.deliver(p) }, t("retry")) : null,
      ),
    );
  }

  private composerKey(ev: KeyboardEvent): void {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      this.input.form?.requestSubmit();
    }
  }

  private submit(ev: Event): void {
    ev.preventDefault();
    const raw = this.input.value;
    const text = raw.trim();
    if (!text || this.closed) return;
    this.input.value = "";
    const pending: Pending = {
      localId: `local-${randomKey()}`,
      key: randomKey(),
      raw,
      text,
      state: "sending",
      at: new Date().toISOString(),
    };
    this.pendings.push(pending);
    this.render("bottom");
    void this.deliver(pending);
  }

  /**
   * Sends (or re-sends) one message. Every attempt carries the same
   * Idempotency-Key and the same body, so however many times it is retried
   * the server stores it once and answers each retry with the original.
   */
  private async deliver(p: Pending): Promise<void> {
    p.state = "sending";
    p.reason = undefined;
    this.render("keep");
    try {
      const stored = await this.api.send(this.session.tenant_id, this.session.id, p.raw, p.key);
      this.pendings = this.pendings.filter((x) => x !== p);
      this.merge([stored], "append");
    } catch (err) {
      if (!this.pendings.includes(p)) return;
      p.state = "failed";
      p.reason = err instanceof ApiError ? err.describe() : t("errNetwork");
      this.render("keep");
    }
  }

  private typing(): void {
    const now = Date.now();
    if (this.closed || now - this.lastTypingSent < TYPING_SEND_EVERY_MS || !this.input.value.trim()) return;
    this.lastTypingSent = now;
    this.rt.typing(this.session.id);
  }

  private showTyping(user: number): void {
    window.clearTimeout(this.typingTimers.get(user));
    this.typingTimers.set(user, window.setTimeout(() => this.stopTyping(user), TYPING_SHOWN_MS));
    this.renderTyping();
  }

  private stopTyping(user: number): void {
    window.clearTimeout(this.typingTimers.get(user));
    if (this.typingTimers.delete(user)) this.renderTyping();
  }

  private renderTyping(): void {
    const who = [...this.typingTimers.keys()];
    const first = who[0];
    if (first === undefined) {
      this.typingLine.textContent = "";
    } else if (this.agents.has(first)) {
      this.typingLine.textContent = t("typingAgent");
    } else {
      this.typingLine.textContent = t("typingUser", { who: this.label(first) });
    }
  }

  /** Moves the read mark to the newest message while the viewer can see it. */
  private markRead(): void {
    if (document.visibilityState !== "visible" || !this.root.isConnected) return;
    const newest = this.newest();
    if (!newest || newest.id === this.lastMarked || newest.sender_id === this.me) return;
    this.lastMarked = newest.id;
    this.api.markRead(this.session.tenant_id, this.session.id, newest.id).catch(() => {
      this.lastMarked = undefined;
    });
  }

  private showError(err: unknown): void {
    const reason = err instanceof ApiError ? err.describe() : t("errNetwork");
    this.typingLine.textContent = t("actionFailed", { reason });
  }
}

/** Search within the session: term, sender and dates, paged with the same cursors. */
class SearchPanel {
  readonly root: HTMLElement;
  private readonly form: HTMLFormElement;
  private readonly results: HTMLOListElement;
  private readonly summary: HTMLParagraphElement;
  private readonly more: HTMLButtonElement;
  private cursor: string | undefined;
  private query: Record<string, string | undefined> = {};
  private count = 0;

  constructor(
    private readonly api: Api,
    private readonly session: () => Session,
    private readonly label: (m: ChatMessage) => string,
  ) {
    const field = (text: string, input: HTMLInputElement) => {
      input.id = uid("search");
      return h("div", { class: "field" }, h("label", { for: input.id }, text), input);
    };
    this.form = h(
      "form",
      { class: "search-form", role: "search", onsubmit: (ev: Event) => this.submit(ev) },
      field(t("searchTerm"), h("input", { name: "term", type: "search", maxlength: 200 })),
      field(t("searchSender"), h("input", { name: "sender_id", type: "number", min: 1, inputmode: "numeric" })),
      field(t("searchFrom"), h("input", { name: "start", type: "datetime-local" })),
      field(t("searchTo"), h("input", { name: "end", type: "datetime-local" })),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", class: "primary" }, t("search")),
        h("button", { type: "button", onclick: () => this.clear() }, t("searchClear")),
      ),
    );
    this.summary = h("p", { class: "search-summary", role: "status" });
    this.results = h("ol", { class: "messages search-results" });
    this.more = h("button", { type: "button", hidden: true, onclick: () => void this.fetch() }, t("searchMore"));
    this.root = h(
      "details",
      { class: "search" },
      h("summary", {}, t("searchTitle")),
      this.form,
      this.summary,
      this.results,
      this.more,
    );
  }

  private submit(ev: Event): void {
    ev.preventDefault();
    const data = new FormData(this.form);
    const value = (name: string) => String(data.get(name) ?? "").trim();
    const iso = (local: string, endOfMinute: boolean) => {
      if (!local) return undefined;
      const at = new Date(local);
      if (Number.isNaN(at.getTime())) return undefined;
      // A minute picked as the end includes that whole minute.
      if (endOfMinute) at.setSeconds(59, 999);
      return at.toISOString();
    };
    this.query = {
      term: value("term") || undefined,
      sender_id: value("sender_id") || undefined,
      start_date: iso(value("start"), false),
      end_date: iso(value("end"), true),
    };
    this.cursor = undefined;
    this.count = 0;
    this.results.replaceChildren();
    void this.fetch();
  }

  private async fetch(): Promise<void> {
    const s = this.session();
    try {
      const page = await this.api.messages(s.tenant_id, s.id, { ...this.query, limit: 20, cursor: this.cursor });
      for (const m of page.items) {
        this.results.append(
          h(
            "li",
            { class: "msg result", "data-id": m.id },
            h("span", { class: "who" }, this.label(m)),
            h("p", { class: "text" }, m.message),
            h("span", { class: "meta" }, h("time", { datetime: m.created_at }, formatFull(m.created_at))),
          ),
        );
      }
      this.count += page.items.length;
      this.cursor = page.pagination?.next_cursor;
      this.more.hidden = !page.pagination?.has_next;
      this.summary.textContent = this.count === 0 ? t("searchNone") : t("searchCount", { n: this.count });
    } catch (err) {
      this.summary.textContent = err instanceof ApiError ? err.describe() : t("errNetwork");
    }
  }

  private clear(): void {
    this.form.reset();
    this.results.replaceChildren();
    setChildren(this.summary);
    this.more.hidden = true;
    (this.root as HTMLDetailsElement).open = false;
  }
}
