// UI text in Indonesian (the users' language) and English, picked from the
// browser's languages unless the viewer chose one; dates and times are
// formatted in the viewer's own locale.

const id = {
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
  noTenant: "Token ini tidak memiliki akses livechat di tenant mana pun.",
};

type Dict = typeof id;
export type Key = keyof Dict;

const en: Dict = {
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
  noTenant: "This token has no livechat access in any tenant.",
};

const dictionaries = { id, en } as const;
export type Lang = keyof typeof dictionaries;
export const LANGS: readonly Lang[] = ["id", "en"];
const LANG_KEY = "livechat.lang";

/** The viewer's choice if any, else the first of the browser's languages we have, else Indonesian. */
function initialLang(): Lang {
  const chosen = localStorage.getItem(LANG_KEY);
  if (chosen === "id" || chosen === "en") return chosen;
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = tag.toLowerCase().split("-")[0];
    if (base === "id" || base === "in" || base === "ms") return "id";
    if (base === "en") return "en";
  }
  return "id";
}

let current: Lang = initialLang();

export function lang(): Lang {
  return current;
}

export function setLang(next: Lang): void {
  current = next;
  localStorage.setItem(LANG_KEY, next);
  document.documentElement.lang = next;
}

/** The text for `key` with `{name}` placeholders filled in. */
export function t(key: Key, params: Record<string, string | number> = {}): string {
  return dictionaries[current][key].replace(/\{(\w+)\}/g, (_, name: string) => String(params[name] ?? `{${name}}`));
}

// `undefined` locale: the viewer's own, whatever language the text is in.
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** A message time: the clock only when it is today, else date and time. */
export function formatWhen(iso: string): string {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  const now = new Date();
  const sameDay = at.toDateString() === now.toDateString();
  return sameDay ? timeFormat.format(at) : dateTimeFormat.format(at);
}

/** A full date and time, for tooltips. */
export function formatFull(iso: string): string {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? iso : dateTimeFormat.format(at);
}

document.documentElement.lang = current;
