// src/i18n.ts
var id = {
  appTitle: "Livechat",
  consoleTitle: "Konsol agen",
  widgetTitle: "Bantuan langsung",
  signInTitle: "Masuk",
  signInHelp: "Tempel token akses (JWT) Anda. Token disimpan hanya di tab ini.",
  tokenLabel: "Token akses",
  signIn: "Masuk",
  signOut: "Keluar",
  badToken: "Token tidak dapat dibaca. Salin ulang token lengkapnya.",
  expiredToken: "Token tidak berlaku lagi. Silakan masuk kembali.",
  language: "Bahasa",
  you: "Anda",
  userN: "Pengguna #{n}",
  agentN: "Agen #{n}",
  tenantN: "Tenant {n}",
  tenantLabel: "Tenant",
  connConnecting: "Menghubungkan…",
  connOnline: "Terhubung",
  connReconnecting: "Terputus, menyambung ulang…",
  connPaused: "Offline (tanpa koneksi langsung)",
  connExpired: "Sesi masuk berakhir",
  presenceLabel: "Status agen",
  presenceOnline: "Online",
  presenceOffline: "Offline",
  presenceOfflineHelp: "Anda offline: tidak menerima chat baru, daftar diperbarui berkala.",
  inbox: "Kotak masuk",
  inboxEmpty: "Tidak ada percakapan. Sesi baru akan muncul di sini.",
  queued: "Antre",
  mine: "Milik Anda",
  unread: "{n} belum dibaca",
  refresh: "Muat ulang",
  pickSession: "Pilih percakapan dari kotak masuk.",
  back: "Kembali",
  claim: "Ambil",
  transfer: "Alihkan",
  transferTo: "ID agen tujuan",
  transferGo: "Alihkan",
  cancel: "Batal",
  close: "Tutup sesi",
  confirmClose: "Tutup sesi ini? Pengguna tidak bisa mengirim pesan lagi.",
  sessionQueued: "Menunggu agen",
  sessionWith: "Ditangani {agent}",
  sessionClosed: "Ditutup",
  olderLoad: "Muat pesan sebelumnya",
  olderLoading: "Memuat…",
  olderNone: "Awal percakapan",
  messagesLabel: "Pesan",
  composeLabel: "Tulis pesan",
  composePlaceholder: "Tulis pesan…",
  send: "Kirim",
  sending: "Mengirim…",
  failed: "Gagal terkirim",
  retry: "Coba lagi",
  seen: "Dilihat",
  typingAgent: "Agen sedang mengetik…",
  typingUser: "{who} sedang mengetik…",
  lockedClosed: "Percakapan ini sudah ditutup. Pesan tidak bisa dikirim lagi.",
  startChat: "Mulai chat",
  startNew: "Mulai chat baru",
  widgetIntro: "Ada yang bisa kami bantu? Mulai percakapan dengan tim support.",
  waitingAgent: "Menunggu agen bergabung…",
  agentJoined: "{agent} bergabung",
  agentOnline: "Agen online",
  agentOffline: "Agen offline",
  search: "Cari",
  searchTitle: "Cari di percakapan ini",
  searchTerm: "Kata kunci",
  searchSender: "ID pengirim",
  searchFrom: "Dari",
  searchTo: "Sampai",
  searchClear: "Tutup pencarian",
  searchNone: "Tidak ada pesan yang cocok.",
  searchMore: "Hasil berikutnya",
  searchCount: "{n} hasil",
  errNetwork: "koneksi terputus",
  errClosed: "sesi sudah ditutup",
  errRateLimited: "terlalu banyak permintaan, tunggu sebentar",
  errForbidden: "tidak diizinkan",
  errGeneric: "kesalahan ({code})",
  actionFailed: "Tindakan gagal: {reason}",
  claimedByOther: "Sesi sudah diambil agen lain.",
  agentOfflineErr: "Agen tujuan sedang offline.",
  noTenant: "Token ini tidak memiliki akses livechat di tenant mana pun."
};
var en = {
  appTitle: "Livechat",
  consoleTitle: "Agent console",
  widgetTitle: "Live help",
  signInTitle: "Sign in",
  signInHelp: "Paste your access token (JWT). It is kept in this tab only.",
  tokenLabel: "Access token",
  signIn: "Sign in",
  signOut: "Sign out",
  badToken: "That token cannot be read. Copy the whole token again.",
  expiredToken: "The token is no longer valid. Please sign in again.",
  language: "Language",
  you: "You",
  userN: "User #{n}",
  agentN: "Agent #{n}",
  tenantN: "Tenant {n}",
  tenantLabel: "Tenant",
  connConnecting: "Connecting…",
  connOnline: "Connected",
  connReconnecting: "Disconnected, reconnecting…",
  connPaused: "Offline (no live connection)",
  connExpired: "Signed out",
  presenceLabel: "Agent status",
  presenceOnline: "Online",
  presenceOffline: "Offline",
  presenceOfflineHelp: "You are offline: no new chats are routed to you; the list refreshes periodically.",
  inbox: "Inbox",
  inboxEmpty: "No conversations. New sessions will show up here.",
  queued: "Queued",
  mine: "Yours",
  unread: "{n} unread",
  refresh: "Refresh",
  pickSession: "Pick a conversation from the inbox.",
  back: "Back",
  claim: "Claim",
  transfer: "Transfer",
  transferTo: "Target agent id",
  transferGo: "Transfer",
  cancel: "Cancel",
  close: "Close session",
  confirmClose: "Close this session? The user will not be able to send messages any more.",
  sessionQueued: "Waiting for an agent",
  sessionWith: "Handled by {agent}",
  sessionClosed: "Closed",
  olderLoad: "Load earlier messages",
  olderLoading: "Loading…",
  olderNone: "Start of the conversation",
  messagesLabel: "Messages",
  composeLabel: "Write a message",
  composePlaceholder: "Write a message…",
  send: "Send",
  sending: "Sending…",
  failed: "Not sent",
  retry: "Retry",
  seen: "Seen",
  typingAgent: "The agent is typing…",
  typingUser: "{who} is typing…",
  lockedClosed: "This conversation is closed. No more messages can be sent.",
  startChat: "Start chat",
  startNew: "Start a new chat",
  widgetIntro: "How can we help? Start a conversation with the support team.",
  waitingAgent: "Waiting for an agent to join…",
  agentJoined: "{agent} joined",
  agentOnline: "Agent online",
  agentOffline: "Agent offline",
  search: "Search",
  searchTitle: "Search this conversation",
  searchTerm: "Term",
  searchSender: "Sender id",
  searchFrom: "From",
  searchTo: "To",
  searchClear: "Close search",
  searchNone: "No matching messages.",
  searchMore: "More results",
  searchCount: "{n} results",
  errNetwork: "connection lost",
  errClosed: "the session is closed",
  errRateLimited: "too many requests, wait a moment",
  errForbidden: "not allowed",
  errGeneric: "error ({code})",
  actionFailed: "Action failed: {reason}",
  claimedByOther: "Another agent claimed this session first.",
  agentOfflineErr: "The target agent is offline.",
  noTenant: "This token has no livechat access in any tenant."
};
var dictionaries = { id, en };
var LANGS = ["id", "en"];
var LANG_KEY = "livechat.lang";
function initialLang() {
  const chosen = localStorage.getItem(LANG_KEY);
  if (chosen === "id" || chosen === "en") return chosen;
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = tag.toLowerCase().split("-")[0];
    if (base === "id" || base === "in" || base === "ms") return "id";
    if (base === "en") return "en";
  }
  return "id";
}
var current = initialLang();
function lang() {
  return current;
}
function setLang(next) {
  current = next;
  localStorage.setItem(LANG_KEY, next);
  document.documentElement.lang = next;
}
function t(key, params = {}) {
  return dictionaries[current][key].replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? `{${name}}`));
}
var timeFormat = new Intl.DateTimeFormat(void 0, { hour: "2-digit", minute: "2-digit" });
var dateTimeFormat = new Intl.DateTimeFormat(void 0, { dateStyle: "medium", timeStyle: "short" });
function formatWhen(iso) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  const now = /* @__PURE__ */ new Date();
  const sameDay = at.toDateString() === now.toDateString();
  return sameDay ? timeFormat.format(at) : dateTimeFormat.format(at);
}
function formatFull(iso) {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? iso : dateTimeFormat.format(at);
}
document.documentElement.lang = current;

// src/api.ts
var PREFIX = "/api/livechat";
var TIMEOUT_MS = 15e3;
var ApiError = class extends Error {
  constructor(status, code, errors = null) {
    super(code);
    this.status = status;
    this.code = code;
    this.errors = errors;
  }
  status;
  code;
  errors;
  /** True when trying again later may succeed. */
  get retryable() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
  /** A short reason for people. */
  describe() {
    if (this.status === 0) return t("errNetwork");
    if (this.status === 404) return t("errClosed");
    if (this.status === 429) return t("errRateLimited");
    if (this.status === 403) return t("errForbidden");
    const first = this.errors ? Object.values(this.errors)[0]?.[0] : void 0;
    return first ?? t("errGeneric", { code: this.code });
  }
};
var Api = class {
  constructor(token) {
    this.token = token;
  }
  token;
  /** Called on 401, so the app can ask for a new token. */
  onUnauthorized = () => {
  };
  async call(path, opts = {}) {
    const url = new URL(PREFIX + path, location.origin);
    for (const [name, value] of Object.entries(opts.query ?? {})) {
      if (value !== void 0 && value !== "") url.searchParams.set(name, String(value));
    }
    const headers = { Authorization: `Bearer ${this.token}`, Accept: "application/json" };
    if (opts.tenant !== void 0) headers["X-Tenant-ID"] = String(opts.tenant);
    if (opts.body !== void 0) headers["Content-Type"] = "application/json";
    if (opts.idempotencyKey) headers["Idempotency-Key"] = opts.idempotencyKey;
    let res;
    try {
      res = await fetch(url, {
        method: opts.method ?? "GET",
        headers,
        body: opts.body === void 0 ? void 0 : JSON.stringify(opts.body),
        signal: AbortSignal.timeout(TIMEOUT_MS),
        cache: "no-store"
      });
    } catch {
      throw new ApiError(0, "network_error");
    }
    let envelope;
    try {
      envelope = await res.json();
    } catch {
      throw new ApiError(res.status || 0, "unreadable_response");
    }
    if (!res.ok || !envelope.success) {
      if (res.status === 401) this.onUnauthorized();
      throw new ApiError(res.status, envelope.message, envelope.errors);
    }
    return envelope;
  }
  async data(path, opts = {}) {
    const envelope = await this.call(path, opts);
    if (envelope.data === null) throw new ApiError(500, "empty_response");
    return envelope.data;
  }
  async page(path, opts = {}) {
    const envelope = await this.call(path, opts);
    return { items: envelope.data ?? [], pagination: envelope.meta.pagination };
  }
  // The routes the UI uses, named after what they do.
  inbox() {
    return this.page("/agent/sessions", { query: { limit: 100 } });
  }
  latestSession(tenant) {
    return this.page("/sessions", { tenant, query: { limit: 1 } });
  }
  session(tenant, id2) {
    return this.data(`/sessions/${id2}`, { tenant });
  }
  openSession(tenant) {
    return this.data("/sessions", { method: "POST", tenant });
  }
  sessionAction(tenant, id2, action, body) {
    return this.data(`/sessions/${id2}/${action}`, { method: "POST", tenant, body });
  }
  messages(tenant, id2, query) {
    return this.page(`/sessions/${id2}/messages`, { tenant, query });
  }
  send(tenant, id2, message, idempotencyKey) {
    return this.data(`/sessions/${id2}/messages`, {
      method: "POST",
      tenant,
      body: { message },
      idempotencyKey
    });
  }
  markRead(tenant, id2, messageId) {
    return this.call(`/sessions/${id2}/read`, { method: "POST", tenant, body: { message_id: messageId } });
  }
  presence(online) {
    return this.call("/agents/me/presence", { method: "PUT", body: { status: online ? "online" : "offline" } });
  }
  async ticket(tenant) {
    const data = await this.data("/realtime/tickets", { method: "POST", tenant });
    return data.ticket;
  }
};

// src/dom.ts
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === void 0 || value === false) continue;
    if (typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}
function append(el, children) {
  for (const child of children) {
    if (child === null || child === void 0 || child === false) continue;
    el.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}
function setChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}
var counter = 0;
function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}
function randomKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// src/chrome.ts
var STATE_TEXT = {
  connecting: "connConnecting",
  online: "connOnline",
  reconnecting: "connReconnecting",
  paused: "connPaused",
  expired: "connExpired"
};
function connectionBadge(rt) {
  const badge = h("span", { class: "conn", role: "status", "aria-live": "polite", "data-state": rt.state });
  rt.onState((state) => {
    badge.dataset.state = state;
    badge.textContent = t(STATE_TEXT[state]);
  });
  return badge;
}
function languagePicker(onChange) {
  const names = { id: "Indonesia", en: "English" };
  const select = h(
    "select",
    {
      id: "lang",
      onchange: () => {
        setLang(select.value);
        onChange();
      }
    },
    ...LANGS.map((l) => h("option", { value: l, selected: l === lang() }, names[l]))
  );
  return h("div", { class: "lang" }, h("label", { for: "lang", class: "visually-hidden" }, t("language")), select);
}
function header(title, who, ...extra) {
  return h(
    "header",
    { class: "topbar" },
    h("h1", {}, title),
    h("span", { class: "whoami" }, who),
    h("div", { class: "tools" }, ...extra)
  );
}

// src/conversation.ts
var PAGE = 30;
var TYPING_SEND_EVERY_MS = 1500;
var TYPING_SHOWN_MS = 3500;
var NEAR_BOTTOM_PX = 48;
var Conversation = class {
  constructor(opts) {
    this.opts = opts;
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
      maxlength: 4e3,
      autocomplete: "off",
      oninput: () => this.typing(),
      onkeydown: (ev) => this.composerKey(ev)
    });
    this.sendButton = h("button", { type: "submit", class: "primary" }, t("send"));
    const form = h(
      "form",
      { class: "composer", onsubmit: (ev) => this.submit(ev) },
      h("label", { for: inputId, class: "visually-hidden" }, t("composeLabel")),
      this.input,
      this.sendButton
    );
    this.searchPanel = opts.search ? new SearchPanel(this.api, () => this.session, (m) => this.label(m.sender_id)) : null;
    this.root = h(
      "div",
      { class: "conversation" },
      this.searchPanel?.root,
      h("div", { class: "scroller" }, this.olderButton, this.list),
      this.typingLine,
      this.lockNotice,
      form
    );
    this.observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) void this.loadOlder();
      },
      { root: this.root.querySelector(".scroller"), rootMargin: "120px 0px 0px 0px" }
    );
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
  opts;
  root;
  session;
  api;
  rt;
  me;
  messages = /* @__PURE__ */ new Map();
  pendings = [];
  rendered = /* @__PURE__ */ new Map();
  othersRead = /* @__PURE__ */ new Map();
  agents = /* @__PURE__ */ new Set();
  olderCursor;
  hasOlder = false;
  loadingOlder = false;
  loadedOnce = false;
  lastMarked;
  lastTypingSent = 0;
  typingTimers = /* @__PURE__ */ new Map();
  list;
  olderButton;
  typingLine;
  lockNotice;
  input;
  sendButton;
  searchPanel;
  observer;
  resize;
  stickToBottom = true;
  unlisten;
  onVisible = () => this.markRead();
  /** Loads the newest page, then subscribes from the newest message it holds. */
  async start() {
    await this.loadLatest();
    const newest = this.newest();
    this.rt.subscribe(this.session.id, this.session.tenant_id, newest?.id);
    if (newest) this.rt.seed(this.session.id, newest.id);
    this.observer.observe(this.olderButton);
    this.input.focus();
  }
  /** Stops listening; keeps the subscription if `keepSubscription` (the inbox still wants it). */
  destroy(keepSubscription) {
    this.unlisten();
    this.observer.disconnect();
    this.resize.disconnect();
    document.removeEventListener("visibilitychange", this.onVisible);
    if (!keepSubscription) this.rt.unsubscribe(this.session.id);
    for (const timer of this.typingTimers.values()) window.clearTimeout(timer);
  }
  /** Takes a newer view of the session (from an action or an event). */
  setSession(session) {
    if (session.id !== this.session.id) return;
    if (session.updated_at < this.session.updated_at) return;
    this.session = session;
    if (session.agent_id) this.agents.add(session.agent_id);
    this.applySession();
    this.opts.onSession(session);
  }
  /** Catches up over HTTP (used while the live connection is off). */
  async poll() {
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
        limit: 100
      });
      this.merge(page.items, "append");
    } catch {
    }
  }
  get closed() {
    return this.session.status === "CLOSED";
  }
  applySession() {
    this.input.disabled = this.closed;
    this.sendButton.disabled = this.closed;
    this.lockNotice.hidden = !this.closed;
    this.root.classList.toggle("is-closed", this.closed);
  }
  onFrame(frame) {
    if (frame.type === "subscribed" && frame.session_id === this.session.id) {
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
  async loadLatest() {
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
  async loadOlder() {
    if (!this.hasOlder || this.loadingOlder || !this.olderCursor) return;
    this.loadingOlder = true;
    this.updateOlderButton();
    try {
      const page = await this.api.messages(this.session.tenant_id, this.session.id, {
        limit: PAGE,
        cursor: this.olderCursor,
        direction: "before"
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
    const scroller = this.scroller();
    if (this.hasOlder && scroller.scrollTop < 40) window.setTimeout(() => void this.loadOlder(), 50);
  }
  updateOlderButton() {
    this.olderButton.disabled = !this.hasOlder || this.loadingOlder;
    this.olderButton.textContent = this.loadingOlder ? t("olderLoading") : this.hasOlder ? t("olderLoad") : t("olderNone");
    this.olderButton.classList.toggle("at-start", !this.hasOlder);
  }
  /** Adds messages (deduplicated by id) and settles matching optimistic sends. */
  merge(items, anchor) {
    for (const m of items) {
      if (m.session_id !== this.session.id) continue;
      this.messages.set(m.id, m);
      if (m.sender_id === this.me) {
        const i = this.pendings.findIndex((p) => p.state === "sending" && p.text === m.message);
        if (i >= 0) this.pendings.splice(i, 1);
      }
    }
    this.render(anchor);
    this.markRead();
  }
  newest() {
    let best;
    for (const m of this.messages.values()) if (!best || m.created_at > best.created_at) best = m;
    return best;
  }
  scroller() {
    return this.list.parentElement ?? this.list;
  }
  label(sender) {
    if (sender === this.me) return t("you");
    return this.agents.has(sender) ? t("agentN", { n: sender }) : t("userN", { n: sender });
  }
  /** The newest of my messages the other side has read up to. */
  seenId() {
    let mark;
    for (const id2 of this.othersRead.values()) {
      const m = this.messages.get(id2);
      if (m && (!mark || m.created_at > mark)) mark = m.created_at;
    }
    if (!mark) return void 0;
    let seen;
    for (const m of this.messages.values()) {
      if (m.sender_id === this.me && m.created_at <= mark && (!seen || m.created_at > seen.created_at)) seen = m;
    }
    return seen?.id;
  }
  /** Redraws the list, keeping the viewer's place: `prepend` holds the distance to the bottom. */
  render(anchor) {
    const scroller = this.scroller();
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    const atBottom = fromBottom - scroller.clientHeight < NEAR_BOTTOM_PX;
    const seen = this.seenId();
    const ordered = [...this.messages.values()].sort((a, b) => a.created_at < b.created_at ? -1 : 1);
    const nodes = [];
    const live = /* @__PURE__ */ new Set();
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
    if (anchor === "bottom" || anchor === "append" && atBottom) {
      scroller.scrollTop = scroller.scrollHeight;
    } else if (anchor === "prepend") {
      scroller.scrollTop = scroller.scrollHeight - fromBottom;
    }
  }
  /**
   * Puts `nodes` in the list with as few moves as possible: clearing and
   * refilling it would drop the browser's scroll anchor and the focus.
   */
  place(nodes) {
    const wanted = new Set(nodes);
    for (const child of [...this.list.children]) if (!wanted.has(child)) child.remove();
    nodes.forEach((node, i) => {
      const at = this.list.children[i];
      if (at !== node) this.list.insertBefore(node, at ?? null);
    });
  }
  cached(key, sig, make) {
    const hit = this.rendered.get(key);
    if (hit && hit.sig === sig) return hit.el;
    const el = make();
    this.rendered.set(key, { sig, el });
    return el;
  }
  messageItem(m, seen) {
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
        seen ? h("span", { class: "seen" }, ` · ${t("seen")}`) : null
      )
    );
  }
  pendingItem(p) {
    const failed = p.state === "failed";
    return h(
      "li",
      { class: `msg mine ${p.state}`, "data-state": p.state, "data-key": p.key },
      h("span", { class: "who" }, t("you")),
      h("p", { class: "text" }, p.text),
      h(
        "span",
        { class: "meta", role: failed ? "alert" : void 0 },
        failed ? `${t("failed")}: ${p.reason ?? ""}` : t("sending"),
        failed ? h("button", { type: "button", class: "retry", onclick: () => void this.deliver(p) }, t("retry")) : null
      )
    );
  }
  composerKey(ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      this.input.form?.requestSubmit();
    }
  }
  submit(ev) {
    ev.preventDefault();
    const raw2 = this.input.value;
    const text = raw2.trim();
    if (!text || this.closed) return;
    this.input.value = "";
    const pending = {
      localId: `local-${randomKey()}`,
      key: randomKey(),
      raw: raw2,
      text,
      state: "sending",
      at: (/* @__PURE__ */ new Date()).toISOString()
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
  async deliver(p) {
    p.state = "sending";
    p.reason = void 0;
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
  typing() {
    const now = Date.now();
    if (this.closed || now - this.lastTypingSent < TYPING_SEND_EVERY_MS || !this.input.value.trim()) return;
    this.lastTypingSent = now;
    this.rt.typing(this.session.id);
  }
  showTyping(user) {
    window.clearTimeout(this.typingTimers.get(user));
    this.typingTimers.set(user, window.setTimeout(() => this.stopTyping(user), TYPING_SHOWN_MS));
    this.renderTyping();
  }
  stopTyping(user) {
    window.clearTimeout(this.typingTimers.get(user));
    if (this.typingTimers.delete(user)) this.renderTyping();
  }
  renderTyping() {
    const who = [...this.typingTimers.keys()];
    const first = who[0];
    if (first === void 0) {
      this.typingLine.textContent = "";
    } else if (this.agents.has(first)) {
      this.typingLine.textContent = t("typingAgent");
    } else {
      this.typingLine.textContent = t("typingUser", { who: this.label(first) });
    }
  }
  /** Moves the read mark to the newest message while the viewer can see it. */
  markRead() {
    if (document.visibilityState !== "visible" || !this.root.isConnected) return;
    const newest = this.newest();
    if (!newest || newest.id === this.lastMarked || newest.sender_id === this.me) return;
    this.lastMarked = newest.id;
    this.api.markRead(this.session.tenant_id, this.session.id, newest.id).catch(() => {
      this.lastMarked = void 0;
    });
  }
  showError(err) {
    const reason = err instanceof ApiError ? err.describe() : t("errNetwork");
    this.typingLine.textContent = t("actionFailed", { reason });
  }
};
var SearchPanel = class {
  constructor(api, session, label) {
    this.api = api;
    this.session = session;
    this.label = label;
    const field = (text, input) => {
      input.id = uid("search");
      return h("div", { class: "field" }, h("label", { for: input.id }, text), input);
    };
    this.form = h(
      "form",
      { class: "search-form", role: "search", onsubmit: (ev) => this.submit(ev) },
      field(t("searchTerm"), h("input", { name: "term", type: "search", maxlength: 200 })),
      field(t("searchSender"), h("input", { name: "sender_id", type: "number", min: 1, inputmode: "numeric" })),
      field(t("searchFrom"), h("input", { name: "start", type: "datetime-local" })),
      field(t("searchTo"), h("input", { name: "end", type: "datetime-local" })),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", class: "primary" }, t("search")),
        h("button", { type: "button", onclick: () => this.clear() }, t("searchClear"))
      )
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
      this.more
    );
  }
  api;
  session;
  label;
  root;
  form;
  results;
  summary;
  more;
  cursor;
  query = {};
  count = 0;
  submit(ev) {
    ev.preventDefault();
    const data = new FormData(this.form);
    const value = (name) => String(data.get(name) ?? "").trim();
    const iso = (local, endOfMinute) => {
      if (!local) return void 0;
      const at = new Date(local);
      if (Number.isNaN(at.getTime())) return void 0;
      if (endOfMinute) at.setSeconds(59, 999);
      return at.toISOString();
    };
    this.query = {
      term: value("term") || void 0,
      sender_id: value("sender_id") || void 0,
      start_date: iso(value("start"), false),
      end_date: iso(value("end"), true)
    };
    this.cursor = void 0;
    this.count = 0;
    this.results.replaceChildren();
    void this.fetch();
  }
  async fetch() {
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
            h("span", { class: "meta" }, h("time", { datetime: m.created_at }, formatFull(m.created_at)))
          )
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
  clear() {
    this.form.reset();
    this.results.replaceChildren();
    setChildren(this.summary);
    this.more.hidden = true;
    this.root.open = false;
  }
};

// src/realtime.ts
var DELAYS_MS = [300, 1e3, 2e3, 4e3, 8e3];
var PING_EVERY_MS = 2e4;
var SILENT_LIMIT_MS = 5e4;
var TOKEN_EXPIRED = 4001;
var Realtime = class {
  constructor(api, ticketTenant) {
    this.api = api;
    this.ticketTenant = ticketTenant;
  }
  api;
  ticketTenant;
  state = "connecting";
  ws = null;
  subs = /* @__PURE__ */ new Map();
  inbox = false;
  attempt = 0;
  retryTimer;
  pingTimer;
  lastFrameAt = 0;
  paused = true;
  frameListeners = /* @__PURE__ */ new Set();
  stateListeners = /* @__PURE__ */ new Set();
  onFrame(listener) {
    this.frameListeners.add(listener);
    return () => this.frameListeners.delete(listener);
  }
  onState(listener) {
    this.stateListeners.add(listener);
    listener(this.state);
    return () => this.stateListeners.delete(listener);
  }
  /** Connects (again) and keeps connecting until paused. */
  start() {
    if (!this.paused) return;
    this.paused = false;
    this.attempt = 0;
    this.setState("connecting");
    void this.connect();
  }
  /** Closes the connection and stays disconnected (an agent going offline). */
  pause() {
    this.paused = true;
    window.clearTimeout(this.retryTimer);
    this.ws?.close(1e3, "paused");
    this.ws = null;
    this.setState("paused");
  }
  /** Receives a session's events; `lastEventId` resumes after what the caller already holds. */
  subscribe(sessionId, tenant, lastEventId) {
    const known = this.subs.get(sessionId);
    const sub = { tenant, lastEventId: known?.lastEventId ?? lastEventId };
    this.subs.set(sessionId, sub);
    this.sendSubscribe(sessionId, sub);
  }
  unsubscribe(sessionId) {
    const sub = this.subs.get(sessionId);
    if (!sub) return;
    this.subs.delete(sessionId);
    this.send({ type: "unsubscribe", session_id: sessionId, tenant_id: sub.tenant });
  }
  isSubscribed(sessionId) {
    return this.subs.has(sessionId);
  }
  /** The last persisted event seen for a session, if any. */
  lastEventId(sessionId) {
    return this.subs.get(sessionId)?.lastEventId;
  }
  /** Records the newest id loaded over HTTP, unless the stream already went further. */
  seed(sessionId, id2) {
    const sub = this.subs.get(sessionId);
    if (sub && !sub.lastEventId) sub.lastEventId = id2;
  }
  watchInbox() {
    this.inbox = true;
    this.send({ type: "watch_inbox" });
  }
  typing(sessionId) {
    const sub = this.subs.get(sessionId);
    if (sub) this.send({ type: "typing", session_id: sessionId, tenant_id: sub.tenant });
  }
  setState(state) {
    if (this.state === state) return;
    this.state = state;
    for (const listener of this.stateListeners) listener(state);
  }
  send(frame) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }
  sendSubscribe(sessionId, sub) {
    this.send({ type: "subscribe", session_id: sessionId, tenant_id: sub.tenant, last_event_id: sub.lastEventId });
  }
  async connect() {
    let ticket;
    try {
      ticket = await this.api.ticket(this.ticketTenant);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        this.setState("expired");
        return;
      }
      this.retry();
      return;
    }
    if (this.paused) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${PREFIX}/realtime/ws?ticket=${encodeURIComponent(ticket)}`);
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.lastFrameAt = Date.now();
      if (this.inbox) this.send({ type: "watch_inbox" });
      for (const [sessionId, sub] of this.subs) this.sendSubscribe(sessionId, sub);
      this.setState("online");
      this.keepAlive(ws);
    });
    ws.addEventListener("message", (msg) => {
      if (this.ws !== ws || typeof msg.data !== "string") return;
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (frame.type === "event" && "id" in frame && frame.id && frame.session_id) {
        const sub = this.subs.get(frame.session_id);
        if (sub) sub.lastEventId = frame.id;
      }
      if (frame.type === "unsubscribed" && frame.reason === "session_closed") this.subs.delete(frame.session_id);
      for (const listener of this.frameListeners) listener(frame);
    });
    ws.addEventListener("close", (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      window.clearInterval(this.pingTimer);
      if (this.paused) return;
      if (ev.code === TOKEN_EXPIRED) {
        this.setState("expired");
        return;
      }
      this.retry();
    });
  }
  /** Pings now and then, and drops a connection that went silent without closing. */
  keepAlive(ws) {
    window.clearInterval(this.pingTimer);
    this.pingTimer = window.setInterval(() => {
      if (this.ws !== ws) return;
      if (Date.now() - this.lastFrameAt > SILENT_LIMIT_MS) {
        ws.close(4e3, "silent");
        return;
      }
      this.send({ type: "ping" });
    }, PING_EVERY_MS);
  }
  retry() {
    if (this.paused) return;
    this.setState("reconnecting");
    const base = DELAYS_MS[Math.min(this.attempt, DELAYS_MS.length - 1)] ?? 8e3;
    this.attempt += 1;
    const delay = base + Math.random() * base * 0.3;
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => void this.connect(), delay);
  }
};

// src/token.ts
var SUPPORT_AGENT = "support_agent";
var STORAGE_KEY = "livechat.token";
function base64UrlJson(part) {
  const padded = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}
function parseToken(raw2) {
  const token = raw2.trim().replace(/^Bearer\s+/i, "");
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return null;
  let claims;
  try {
    claims = base64UrlJson(parts[1]);
  } catch {
    return null;
  }
  const userId = Number(claims.sub);
  if (!Number.isSafeInteger(userId) || userId <= 0) return null;
  const tenants = /* @__PURE__ */ new Map();
  for (const [tenant, roles] of Object.entries(claims.tenants ?? {})) {
    const n = Number(tenant);
    if (Number.isSafeInteger(n) && n > 0 && Array.isArray(roles)) tenants.set(n, roles.map(String));
  }
  return {
    token,
    userId,
    platformAgent: Array.isArray(claims.roles) && claims.roles.includes(SUPPORT_AGENT),
    tenants,
    expiresAt: typeof claims.exp === "number" ? new Date(claims.exp * 1e3) : void 0
  };
}
function isAgent(me2) {
  return me2.platformAgent || [...me2.tenants.values()].some((roles) => roles.includes(SUPPORT_AGENT));
}
function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const handed = fragment.get("token");
  if (handed) {
    sessionStorage.setItem(STORAGE_KEY, handed);
    history.replaceState(null, "", location.pathname + location.search);
    return handed;
  }
  return sessionStorage.getItem(STORAGE_KEY);
}
function storeToken(token) {
  sessionStorage.setItem(STORAGE_KEY, token);
}
function forgetToken() {
  sessionStorage.removeItem(STORAGE_KEY);
}

// src/console.ts
var PRESENCE_EVERY_MS = 5e3;
var OFFLINE_POLL_MS = 4e3;
var INBOX_DEBOUNCE_MS = 250;
var AgentConsole = class {
  constructor(me2, api, rerender, signOut2) {
    this.me = me2;
    this.api = api;
    this.rerender = rerender;
    const agentTenant = [...me2.tenants].find(([, roles]) => roles.includes(SUPPORT_AGENT))?.[0];
    this.rt = new Realtime(api, agentTenant ?? me2.tenants.keys().next().value ?? 1);
    this.presenceButton = h("button", {
      type: "button",
      class: "presence",
      role: "switch",
      "aria-checked": "true",
      "aria-label": t("presenceLabel"),
      onclick: () => void this.setOnline(!this.online)
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
        t("agentN", { n: me2.userId }),
        this.presenceButton,
        connectionBadge(this.rt),
        languagePicker(rerender),
        h("button", { type: "button", onclick: signOut2 }, t("signOut"))
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
            h("button", { type: "button", onclick: () => void this.refresh() }, t("refresh"))
          ),
          this.inboxNote,
          this.inboxList
        ),
        this.pane
      )
    );
    this.rt.onFrame((frame) => this.onFrame(frame));
    this.rt.onState((state) => {
      if (state === "reconnecting") this.wasDisconnected = true;
      if (state === "online" && this.wasDisconnected) {
        this.wasDisconnected = false;
        this.scheduleRefresh();
      }
    });
    this.renderPresence();
  }
  me;
  api;
  rerender;
  root;
  rt;
  sessions = [];
  followed = /* @__PURE__ */ new Set();
  selected = null;
  online = true;
  presenceTimer;
  pollTimer;
  refreshTimer;
  wasDisconnected = false;
  inboxList;
  inboxNote;
  pane;
  presenceButton;
  presenceNote;
  async start() {
    this.rt.watchInbox();
    this.rt.start();
    this.heartbeat();
    await this.refresh();
  }
  stop() {
    this.rt.pause();
    window.clearInterval(this.presenceTimer);
    window.clearInterval(this.pollTimer);
    this.selected?.destroy(false);
  }
  onFrame(frame) {
    if (frame.type !== "event") return;
    if (frame.event === "session.updated") {
      this.selected?.setSession(frame.data);
      this.scheduleRefresh();
    } else if (frame.event === "message.created") {
      this.scheduleRefresh();
    }
  }
  scheduleRefresh() {
    window.clearTimeout(this.refreshTimer);
    this.refreshTimer = window.setTimeout(() => void this.refresh(), INBOX_DEBOUNCE_MS);
  }
  /** Re-reads the inbox; the server counts unread messages. */
  async refresh() {
    try {
      const page = await this.api.inbox();
      this.sessions = page.items;
      this.inboxNote.textContent = page.items.length ? "" : t("inboxEmpty");
    } catch (err) {
      this.inboxNote.textContent = t("actionFailed", { reason: err instanceof ApiError ? err.describe() : "" });
      return;
    }
    const open = this.selected?.session.id;
    const listed = new Set(this.sessions.map((s) => s.id));
    for (const id2 of this.followed) {
      if (!listed.has(id2) && id2 !== open) this.rt.unsubscribe(id2);
      if (!listed.has(id2)) this.followed.delete(id2);
    }
    for (const s of this.sessions) {
      if (!this.rt.isSubscribed(s.id)) this.rt.subscribe(s.id, s.tenant_id);
      this.followed.add(s.id);
    }
    this.renderInbox(open);
  }
  renderInbox(open) {
    const items = this.sessions.map((s) => {
      const unread = s.id === open && document.visibilityState === "visible" ? 0 : s.unread_count ?? 0;
      const queued = s.agent_id === void 0;
      return h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: "inbox-item",
            "data-session": s.id,
            "aria-current": s.id === open ? "true" : void 0,
            onclick: () => void this.select(s)
          },
          h("span", { class: "who" }, t("userN", { n: s.opened_by ?? "?" })),
          h("span", { class: "tenant" }, t("tenantN", { n: s.tenant_id })),
          h("span", { class: `tag ${queued ? "queued" : "mine"}` }, queued ? t("queued") : t("mine")),
          h("time", { datetime: s.updated_at }, formatWhen(s.updated_at)),
          unread > 0 ? h("span", { class: "unread", "aria-label": t("unread", { n: unread }) }, String(unread)) : null
        )
      );
    });
    setChildren(this.inboxList, ...items);
  }
  async select(s) {
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
      onSession: (next) => this.describe(next, status, actions, problem, conversation)
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
        actions
      ),
      problem,
      conversation.root
    );
    this.root.classList.add("showing-conversation");
    this.describe(s, status, actions, problem, conversation);
    this.renderInbox(s.id);
    await conversation.start();
  }
  back() {
    this.root.classList.remove("showing-conversation");
    this.inboxList.querySelector("[aria-current]")?.focus();
  }
  /** The status line and the actions the session allows now. */
  describe(s, status, actions, problem, c) {
    status.textContent = s.status === "CLOSED" ? t("sessionClosed") : s.agent_id === void 0 ? t("sessionQueued") : t("sessionWith", { agent: s.agent_id === this.me.userId ? t("you") : t("agentN", { n: s.agent_id }) });
    status.dataset.status = s.status;
    const act = async (run) => {
      problem.textContent = "";
      try {
        c.setSession(await run());
        this.scheduleRefresh();
      } catch (err) {
        problem.textContent = err instanceof ApiError && err.status === 409 ? t("claimedByOther") : err instanceof ApiError && err.code === "agent_offline" ? t("agentOfflineErr") : t("actionFailed", { reason: err instanceof ApiError ? err.describe() : t("errNetwork") });
      }
    };
    const buttons = [];
    if (s.status === "OPEN") {
      if (s.agent_id !== this.me.userId) {
        buttons.push(
          h("button", { type: "button", class: "primary", onclick: () => void act(() => this.api.sessionAction(s.tenant_id, s.id, "claim")) }, t("claim"))
        );
      }
      const targetId = uid("transfer");
      const target = h("input", { id: targetId, type: "number", min: 1, inputmode: "numeric", required: true });
      const transfer = h(
        "form",
        {
          class: "transfer",
          hidden: true,
          onsubmit: (ev) => {
            ev.preventDefault();
            void act(() => this.api.sessionAction(s.tenant_id, s.id, "transfer", { agent_id: Number(target.value) }));
          }
        },
        h("label", { for: targetId }, t("transferTo")),
        target,
        h("button", { type: "submit" }, t("transferGo")),
        h("button", { type: "button", onclick: () => (transfer.hidden = true, problem.textContent = "") }, t("cancel"))
      );
      const confirm = h(
        "div",
        { class: "confirm", hidden: true, role: "group" },
        h("span", {}, t("confirmClose")),
        h("button", { type: "button", class: "danger", onclick: () => void act(() => this.api.sessionAction(s.tenant_id, s.id, "close")) }, t("close")),
        h("button", { type: "button", onclick: () => confirm.hidden = true }, t("cancel"))
      );
      buttons.push(
        h("button", { type: "button", onclick: () => (transfer.hidden = false, target.focus()) }, t("transfer")),
        h("button", { type: "button", class: "danger", onclick: () => confirm.hidden = false }, t("close")),
        transfer,
        confirm
      );
    }
    setChildren(actions, ...buttons);
  }
  /** Online: the live connection plus a presence heartbeat. Offline: neither, and polling instead. */
  async setOnline(online) {
    this.online = online;
    this.renderPresence();
    window.clearInterval(this.pollTimer);
    if (online) {
      this.rt.start();
      this.heartbeat();
    } else {
      window.clearInterval(this.presenceTimer);
      this.rt.pause();
      await this.api.presence(false).catch(() => void 0);
      this.pollTimer = window.setInterval(() => {
        void this.refresh();
        void this.selected?.poll();
      }, OFFLINE_POLL_MS);
    }
  }
  heartbeat() {
    window.clearInterval(this.presenceTimer);
    const beat = () => void this.api.presence(true).catch(() => void 0);
    beat();
    this.presenceTimer = window.setInterval(beat, PRESENCE_EVERY_MS);
  }
  renderPresence() {
    this.presenceButton.setAttribute("aria-checked", String(this.online));
    this.presenceButton.dataset.online = String(this.online);
    this.presenceButton.textContent = this.online ? t("presenceOnline") : t("presenceOffline");
    this.presenceNote.hidden = this.online;
  }
};

// src/widget.ts
var TenantWidget = class {
  constructor(me2, api, tenant, rerender, signOut2, switchTenant) {
    this.me = me2;
    this.api = api;
    this.tenant = tenant;
    this.rt = new Realtime(api, tenant);
    this.status = h("p", { class: "session-status", role: "status" });
    this.agentState = h("span", { class: "agent-state" });
    this.body = h("main", { class: "widget-body" });
    this.root = h(
      "div",
      { class: "app widget" },
      header(
        t("widgetTitle"),
        `${t("userN", { n: me2.userId })} · ${t("tenantN", { n: tenant })}`,
        switchTenant,
        connectionBadge(this.rt),
        languagePicker(rerender),
        h("button", { type: "button", onclick: signOut2 }, t("signOut"))
      ),
      h("div", { class: "widget-status" }, this.status, this.agentState),
      this.body
    );
    this.rt.onFrame((frame) => this.onFrame(frame));
  }
  me;
  api;
  tenant;
  root;
  rt;
  body;
  status;
  agentState;
  conversation = null;
  async start() {
    this.rt.start();
    try {
      const latest = await this.api.latestSession(this.tenant);
      const open = latest.items.find((s) => s.status === "OPEN");
      if (open) {
        await this.show(open);
        return;
      }
    } catch {
    }
    this.showStart();
  }
  stop() {
    this.rt.pause();
    this.conversation?.destroy(false);
  }
  onFrame(frame) {
    if (frame.type !== "event" || frame.event !== "presence") return;
    const agent = this.conversation?.session.agent_id;
    if (agent !== void 0 && frame.data.agent_id === agent) {
      this.agentState.textContent = frame.data.status === "online" ? t("agentOnline") : t("agentOffline");
      this.agentState.dataset.state = frame.data.status;
    }
  }
  showStart(problem = "") {
    this.status.textContent = "";
    const button = h("button", { type: "button", class: "primary big", onclick: () => void this.open() }, t("startChat"));
    setChildren(
      this.body,
      h("div", { class: "intro" }, h("p", {}, t("widgetIntro")), button, problem ? h("p", { class: "problem", role: "alert" }, problem) : null)
    );
    button.focus();
  }
  /** Opens a session; if the tenant already has one open, resumes that one instead. */
  async open() {
    try {
      await this.show(await this.openSession());
    } catch (err) {
      const active = err instanceof ApiError && err.code === "session_already_active" ? err.errors?.session_id?.[0] : void 0;
      if (active) {
        try {
          await this.show(await this.api.session(this.tenant, active));
          return;
        } catch (again) {
          err = again;
        }
      }
      this.showStart(t("actionFailed", { reason: err instanceof ApiError ? err.describe() : t("errNetwork") }));
    }
  }
  /** Opens, trying again (a few times) while the server answers that the
   * tenant's sessions kept changing under the open (409 session_conflict). */
  async openSession() {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.api.openSession(this.tenant);
      } catch (err) {
        if (!(err instanceof ApiError && err.code === "session_conflict") || attempt >= 3) throw err;
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      }
    }
  }
  async show(session) {
    this.conversation?.destroy(false);
    const restart = h("button", { type: "button", class: "primary", hidden: true, onclick: () => void this.open() }, t("startNew"));
    const conversation = new Conversation({
      api: this.api,
      rt: this.rt,
      me: this.me.userId,
      session,
      search: false,
      onSession: (s) => this.describe(s, restart)
    });
    this.conversation = conversation;
    setChildren(this.body, conversation.root, h("div", { class: "restart" }, restart));
    this.describe(session, restart);
    await conversation.start();
  }
  describe(s, restart) {
    this.status.dataset.status = s.status;
    this.status.textContent = s.status === "CLOSED" ? t("sessionClosed") : s.agent_id === void 0 ? t("waitingAgent") : t("sessionWith", { agent: t("agentN", { n: s.agent_id }) });
    restart.hidden = s.status !== "CLOSED";
    if (s.status === "CLOSED") this.agentState.textContent = "";
  }
};
function tenantPicker(tenants, current2, onPick) {
  if (tenants.length < 2) return null;
  const id2 = uid("tenant");
  const select = h(
    "select",
    { id: id2, onchange: () => onPick(Number(select.value)) },
    ...tenants.map((n) => h("option", { value: n, selected: n === current2 }, t("tenantN", { n })))
  );
  return h("div", { class: "tenant-pick" }, h("label", { for: id2, class: "visually-hidden" }, t("tenantLabel")), select);
}

// src/main.ts
var TENANT_KEY = "livechat.tenant";
var mount = document.getElementById("app") ?? document.body;
var screen = null;
function show(next, fallback) {
  screen?.stop();
  screen = next;
  setChildren(mount, next?.root ?? fallback);
  document.title = `${t("appTitle")} · ${next ? document.querySelector("h1")?.textContent ?? "" : t("signInTitle")}`;
  void next?.start();
}
function signOut() {
  forgetToken();
  signIn();
}
function signIn(problem = "") {
  const fieldId = uid("token");
  const input = h("textarea", { id: fieldId, rows: 4, required: true, spellcheck: "false", autocomplete: "off" });
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: (ev) => {
        ev.preventDefault();
        const me2 = parseToken(input.value);
        if (!me2) {
          signIn(t("badToken"));
          return;
        }
        storeToken(me2.token);
        start(me2);
      }
    },
    h("h1", {}, t("signInTitle")),
    h("p", {}, t("signInHelp")),
    h("label", { for: fieldId }, t("tokenLabel")),
    input,
    problem ? h("p", { class: "problem", role: "alert" }, problem) : null,
    h("button", { type: "submit", class: "primary" }, t("signIn"))
  );
  show(null, h("main", { class: "app signin-page" }, form));
  input.focus();
}
function start(me2) {
  const api = new Api(me2.token);
  api.onUnauthorized = () => {
    forgetToken();
    signIn(t("expiredToken"));
  };
  const rerender = () => start(me2);
  if (isAgent(me2)) {
    show(new AgentConsole(me2, api, rerender, signOut));
    return;
  }
  const tenants = [...me2.tenants.keys()].sort((a, b) => a - b);
  const remembered = Number(sessionStorage.getItem(TENANT_KEY));
  const tenant = tenants.includes(remembered) ? remembered : tenants[0];
  if (tenant === void 0) {
    forgetToken();
    signIn(t("noTenant"));
    return;
  }
  const picker = tenantPicker(tenants, tenant, (next) => {
    sessionStorage.setItem(TENANT_KEY, String(next));
    start(me2);
  });
  show(new TenantWidget(me2, api, tenant, rerender, signOut, picker));
}
var raw = takeToken();
var me = raw ? parseToken(raw) : null;
if (me) start(me);
else signIn(raw ? t("badToken") : "");
