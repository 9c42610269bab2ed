// The web UI end to end, in Debian's Chromium through playwright-core: an
// agent (desktop, English) and a tenant user (phone, Indonesian) in two
// browser contexts hold a conversation against the real server; the server
// restarts in the middle; an XSS payload stays text. Run by
// tests/api/browser.rs, which owns the server and answers the `@@stop` /
// `@@start` requests this script prints. Exits non-zero on the first failure.

import { chromium } from "playwright-core";
import { createInterface } from "node:readline";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";

const BASE = need("LIVECHAT_URL");
const AGENT_TOKEN = need("AGENT_TOKEN");
const USER_TOKEN = need("USER_TOKEN");
const SHOTS = need("SCREENSHOT_DIR");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TENANT = 1;
const STEP_MS = 15_000;

const started = Date.now();
const problems = [];
const offOrigin = [];

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function step(what) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);
}

function fail(message) {
  throw new Error(message);
}

// Lines from the Rust side arrive on stdin.
const lines = createInterface({ input: process.stdin });
const waiting = [];
const received = [];
lines.on("line", (line) => {
  const next = waiting.shift();
  if (next) next(line.trim());
  else received.push(line.trim());
});
async function ask(request, answer) {
  console.log(request);
  const line = received.shift() ?? (await new Promise((resolve) => waiting.push(resolve)));
  if (line !== answer) fail(`expected ${answer} from the test harness, got ${JSON.stringify(line)}`);
}

/** Polls `check` until it returns a truthy value. */
async function until(what, check, timeout = STEP_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) fail(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function text(page, selector) {
  return (await page.locator(selector).first().textContent({ timeout: 2000 })) ?? "";
}

/** Texts of the delivered messages in the open conversation, oldest first. */
function delivered(page) {
  return page.$$eval(".conversation .messages:not(.search-results) li.msg[data-state=sent] .text", (els) =>
    els.map((e) => e.textContent),
  );
}

async function showsOnce(page, who, message) {
  await until(`${who} to show ${JSON.stringify(message)}`, async () => (await delivered(page)).includes(message));
  const copies = (await delivered(page)).filter((m) => m === message).length;
  if (copies !== 1) fail(`${who} shows ${JSON.stringify(message)} ${copies} times`);
}

async function api(method, path, token, body) {
  const res = await fetch(`${BASE}/api/livechat${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "X-Tenant-ID": String(TENANT), "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const envelope = await res.json();
  if (!res.ok) fail(`${method} ${path}: ${res.status} ${JSON.stringify(envelope)}`);
  return envelope;
}

/** Every message of the session as the server has it, oldest first. */
async function serverMessages(session) {
  const all = [];
  let cursor;
  for (;;) {
    const q = new URLSearchParams({ limit: "100", ...(cursor ? { cursor } : {}) });
    const page = await api("GET", `/sessions/${session}/messages?${q}`, AGENT_TOKEN);
    all.push(...page.data);
    if (!page.meta.pagination.has_next) return all.reverse().map((m) => m.message);
    cursor = page.meta.pagination.next_cursor;
  }
}

async function newContext(browser, name, options) {
  const context = await browser.newContext(options);
  // Records what an injected payload would do, and every CSP violation.
  await context.addInitScript(() => {
    window.__xss = [];
    window.pwned = (what) => window.__xss.push(String(what));
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  // Every request stays on the server under test.
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.hostname !== "127.0.0.1") {
      offOrigin.push(url.href);
      return route.abort();
    }
    return route.fallback();
  });
  const page = await context.newPage();
  page.on("pageerror", (err) => problems.push(`${name}: page error: ${err.message}`));
  page.on("console", (msg) => {
    // A refused stream while the server is down is expected; script errors are not.
    if (msg.type() === "error" && !/WebSocket|Failed to load resource|ERR_CONNECTION_REFUSED|net::/.test(msg.text())) {
      problems.push(`${name}: console error: ${msg.text()}`);
    }
  });
  return page;
}

async function main() {
  await mkdir(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    await scenario(browser);
  } finally {
    await browser.close();
  }
}

async function scenario(browser) {
  step(`chromium ${browser.version()}`);
  const agent = await newContext(browser, "agent", { viewport: { width: 1280, height: 800 }, locale: "en-US" });
  const user = await newContext(browser, "user", {
    viewport: { width: 390, height: 780 },
    locale: "id-ID",
    isMobile: true,
    hasTouch: true,
  });

  step("signing in by pasting a token");
  const visitor = await newContext(browser, "visitor", { viewport: { width: 800, height: 600 }, locale: "id-ID" });
  await visitor.goto(`${BASE}/`);
  await visitor.getByLabel("Token akses").fill("bukan token");
  await visitor.getByRole("button", { name: "Masuk" }).click();
  await until("the unreadable-token message", async () => (await text(visitor, ".problem")).startsWith("Token tidak dapat dibaca"));
  await visitor.getByLabel("Token akses").fill(USER_TOKEN);
  await visitor.getByRole("button", { name: "Masuk" }).click();
  await visitor.getByRole("button", { name: "Mulai chat" }).waitFor({ timeout: STEP_MS });
  await visitor.context().close();

  // The UI's own responses carry the strict policy.
  const res = await user.goto(`${BASE}/#token=${USER_TOKEN}`);
  const csp = res.headers()["content-security-policy"] ?? "";
  if (!csp.includes("default-src 'self'") || !csp.includes("require-trusted-types-for 'script'")) {
    fail(`weak or missing CSP on /: ${csp}`);
  }
  if (res.headers()["x-content-type-options"] !== "nosniff") fail("no nosniff on /");
  await until("the token to leave the address bar", async () => (await user.evaluate(() => location.href)) === `${BASE}/`);

  step("tenant user starts a chat while no agent is online (queued)");
  await user.getByRole("button", { name: "Mulai chat" }).click();
  await until("the queued status", async () => (await text(user, ".session-status")).includes("Menunggu agen"));
  await until("the user's live connection", async () => (await text(user, ".conn")) === "Terhubung");
  if (!(await user.evaluate(() => sessionStorage.getItem("livechat.token")))) fail("the token is not kept in this tab");
  await user.getByLabel("Tulis pesan").fill("Halo, stok pupuk kami habis");
  await user.getByLabel("Tulis pesan").press("Enter");
  await showsOnce(user, "user", "Halo, stok pupuk kami habis");

  // A long history, so the agent's view has to page upward.
  const sessions = await api("GET", "/sessions?status=OPEN&limit=1", USER_TOKEN);
  const sessionId = sessions.data[0]?.id ?? fail("no open session");
  for (let i = 1; i <= 40; i += 1) {
    await api("POST", `/sessions/${sessionId}/messages`, USER_TOKEN, { message: `riwayat ${i}` });
  }

  step("agent signs in from the link, sees the queued session with its unread count");
  await agent.goto(`${BASE}/#token=${AGENT_TOKEN}`);
  await until("the agent's live connection", async () => (await text(agent, ".conn")) === "Connected");
  const item = agent.locator(`.inbox-item[data-session="${sessionId}"]`);
  await item.waitFor({ timeout: STEP_MS });
  await until("unread count 41", async () => (await item.locator(".unread").textContent()) === "41");
  if (!(await item.textContent()).includes("Queued")) fail("the session is not shown as queued");

  step("agent opens it: newest page first, older pages on scrolling up");
  await item.click();
  await showsOnce(agent, "agent", "riwayat 40");
  const firstPage = (await delivered(agent)).length;
  if (firstPage >= 41) fail(`the first page already holds ${firstPage} messages`);
  for (let i = 0; i < 10 && !(await delivered(agent)).includes("Halo, stok pupuk kami habis"); i += 1) {
    await agent.locator(".scroller").evaluate((el) => (el.scrollTop = 0));
    await agent.waitForTimeout(300);
  }
  const history = await delivered(agent);
  const expected = ["Halo, stok pupuk kami habis", ...Array.from({ length: 40 }, (_, i) => `riwayat ${i + 1}`)];
  if (JSON.stringify(history) !== JSON.stringify(expected)) fail(`history after scrolling up: ${JSON.stringify(history)}`);
  await until("the start-of-conversation marker", async () => (await text(agent, ".older")) === "Start of the conversation");
  await until("unread count cleared", async () => (await item.locator(".unread").count()) === 0);

  step("agent claims; the user sees who handles the chat");
  await agent.getByRole("button", { name: "Claim" }).click();
  await until("the agent's status line", async () => (await text(agent, ".session-status")) === "Handled by You");
  await until("the user's status line", async () => (await text(user, ".session-status")) === "Ditangani Agen #1");

  step("typing is seen both ways");
  await agent.getByLabel("Write a message").pressSequentially("Siap, kami", { delay: 30 });
  await until("the user to see the agent typing", async () => (await text(user, ".typing")) === "Agen sedang mengetik…");
  await user.getByLabel("Tulis pesan").pressSequentially("Baik", { delay: 30 });
  await until("the agent to see the user typing", async () => (await text(agent, ".typing")) === "User #100 is typing…");
  await user.getByLabel("Tulis pesan").fill("");

  step("messages both ways, with seen marks");
  await agent.getByLabel("Write a message").pressSequentially(" cek dulu ya", { delay: 10 });
  await agent.getByRole("button", { name: "Send" }).click();
  await showsOnce(user, "user", "Siap, kami cek dulu ya");
  await showsOnce(agent, "agent", "Siap, kami cek dulu ya");
  await until("the agent to see its message seen", async () => (await agent.locator(".msg.mine .seen").count()) === 1);
  await user.getByLabel("Tulis pesan").fill("Terima kasih!");
  await user.getByRole("button", { name: "Kirim" }).click();
  await showsOnce(agent, "agent", "Terima kasih!");
  await until("the user to see the agent read it", async () => (await user.locator(".msg.mine .seen").count()) === 1);

  step("XSS payloads are shown as text and never run");
  const payloads = [`<img src=x onerror="pwned('img')">`, `<script>pwned('script')</script>`, `<b onmouseover=pwned('b')>tebal</b>`];
  for (const payload of payloads) {
    await user.getByLabel("Tulis pesan").fill(payload);
    await user.getByLabel("Tulis pesan").press("Enter");
  }
  for (const payload of payloads) {
    await showsOnce(user, "user", payload);
    await showsOnce(agent, "agent", payload);
  }
  for (const [name, page] of [["agent", agent], ["user", user]]) {
    const markup = await page.locator(".messages img, .messages script, .messages b").count();
    if (markup !== 0) fail(`${name}: a message became ${markup} element(s)`);
    await page.locator(".messages li.msg").last().hover();
    const ran = await page.evaluate(() => window.__xss);
    if (ran.length) fail(`${name}: payload ran: ${ran}`);
    const violations = await page.evaluate(() => window.__csp);
    if (violations.length) fail(`${name}: CSP violations: ${violations}`);
  }

  step("search within the session (term and sender)");
  await agent.locator(".search summary").click();
  await agent.getByLabel("Term").fill("riwayat 1");
  await agent.getByLabel("Sender id").fill("100");
  await agent.locator(".search-form").getByRole("button", { name: "Search", exact: true }).click();
  await until("11 search results", async () => (await text(agent, ".search-summary")) === "11 results");
  await agent.getByRole("button", { name: "Close search" }).click();

  step("a transfer to an agent who is offline is refused, and said so");
  await agent.getByRole("button", { name: "Transfer" }).click();
  await agent.getByLabel("Target agent id").fill("2");
  await agent.locator(".transfer").getByRole("button", { name: "Transfer" }).click();
  await until("the refusal", async () => (await text(agent, ".pane > .problem")) === "The target agent is offline.");
  await agent.locator(".transfer").getByRole("button", { name: "Cancel" }).click();
  await until("the refusal to clear", async () => (await text(agent, ".pane > .problem")) === "");

  step("screenshots of both screens");
  await agent.locator(".scroller").evaluate((el) => (el.scrollTop = el.scrollHeight));
  await user.locator(".scroller").evaluate((el) => (el.scrollTop = el.scrollHeight));
  await agent.screenshot({ path: join(SHOTS, "agent-console.png") });
  await user.screenshot({ path: join(SHOTS, "tenant-widget.png") });

  step("the agent goes offline and back; the user sees it");
  await agent.getByRole("switch", { name: "Agent status" }).click();
  await until("the paused connection", async () => (await text(agent, ".conn")).startsWith("Offline"));
  await until("the user to see the agent offline", async () => (await text(user, ".agent-state")) === "Agen offline");
  await agent.getByRole("switch", { name: "Agent status" }).click();
  await until("the agent back online", async () => (await text(agent, ".conn")) === "Connected");
  await until("the user to see the agent online", async () => (await text(user, ".agent-state")) === "Agen online");

  step("a send whose answer is lost is retried without a duplicate");
  let cut = 0;
  let firstKey;
  let retryKey;
  await user.route("**/messages", async (route) => {
    const req = route.request();
    if (req.method() !== "POST") return route.fallback();
    if (cut === 0) {
      cut += 1;
      firstKey = req.headers()["idempotency-key"];
      // The server stores it; the browser never hears back.
      await route.fetch();
      return route.abort("connectionreset");
    }
    retryKey = req.headers()["idempotency-key"];
    return route.fallback();
  });
  await user.getByLabel("Tulis pesan").fill("Jawaban hilang di jalan");
  await user.getByLabel("Tulis pesan").press("Enter");
  await until("the message to arrive or fail", async () =>
    (await user.locator(".msg.failed").count()) > 0 || (await delivered(user)).includes("Jawaban hilang di jalan"),
  );
  if ((await user.locator(".msg.failed").count()) > 0) {
    await user.getByRole("button", { name: "Coba lagi" }).click();
    await until("the retry to settle", async () => (await user.locator(".msg.failed, .msg.sending").count()) === 0);
    if (!retryKey || retryKey !== firstKey) fail(`the retry used key ${retryKey}, the first attempt ${firstKey}`);
  }
  await user.unroute("**/messages");
  await showsOnce(user, "user", "Jawaban hilang di jalan");
  await showsOnce(agent, "agent", "Jawaban hilang di jalan");

  step("the server stops: both show it, a send fails visibly");
  await ask("@@stop", "@@stopped");
  await until("the user's reconnecting state", async () => (await text(user, ".conn")).startsWith("Terputus"));
  await until("the agent's reconnecting state", async () => (await text(agent, ".conn")).startsWith("Disconnected"));
  await user.getByLabel("Tulis pesan").fill("Dikirim saat server mati");
  await user.getByLabel("Tulis pesan").press("Enter");
  await until("the failed send", async () => (await user.locator(".msg.failed").count()) === 1);
  if (!(await text(user, ".msg.failed .meta")).includes("Gagal terkirim")) fail("the failure is not explained");

  step("the server starts again; messages written meanwhile arrive, the failed one is retried");
  await ask(`@@start ${sessionId}`, "@@started");
  await until("the user to reconnect", async () => (await text(user, ".conn")) === "Terhubung", 30_000);
  await until("the agent to reconnect", async () => (await text(agent, ".conn")) === "Connected", 30_000);
  await showsOnce(user, "user", "Pesan saat Anda terputus");
  await showsOnce(agent, "agent", "Pesan saat Anda terputus");
  await user.getByRole("button", { name: "Coba lagi" }).click();
  await showsOnce(user, "user", "Dikirim saat server mati");
  await showsOnce(agent, "agent", "Dikirim saat server mati");
  await agent.getByLabel("Write a message").fill("Sudah tersambung lagi");
  await agent.getByLabel("Write a message").press("Enter");
  await showsOnce(user, "user", "Sudah tersambung lagi");
  const gap = await user.locator(".scroller").evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
  if (gap > 60) fail(`the user's view stopped following the conversation (${gap}px above the newest message)`);

  step("every message is on both screens exactly once, in the server's order");
  const truth = await serverMessages(sessionId);
  if (new Set(truth).size !== truth.length) fail(`the server holds a duplicate: ${JSON.stringify(truth)}`);
  for (const [name, page] of [["agent", agent], ["user", user]]) {
    await until(`${name}'s view to match the server`, async () => {
      const shown = await delivered(page);
      // The user's view may not have paged back to the start; compare the tail it holds.
      return JSON.stringify(shown) === JSON.stringify(truth.slice(truth.length - shown.length)) && shown.length >= 10;
    });
  }

  step("the agent closes the session; the user's input locks");
  await agent.getByRole("button", { name: "Close session" }).first().click();
  await agent.locator(".confirm").getByRole("button", { name: "Close session" }).click();
  await until("the agent's closed status", async () => (await text(agent, ".session-status")) === "Closed");
  await until("the user's input to lock", async () => user.getByLabel("Tulis pesan").isDisabled());
  if (!(await user.locator(".locked").isVisible())) fail("the user is not told the session closed");
  if (!(await user.getByRole("button", { name: "Kirim" }).isDisabled())) fail("the send button still works");
  await user.getByRole("button", { name: "Mulai chat baru" }).waitFor();
  await until("the session to leave the inbox", async () => (await item.count()) === 0);
  await user.screenshot({ path: join(SHOTS, "tenant-widget-closed.png") });

  if (offOrigin.length) fail(`requests left 127.0.0.1: ${offOrigin.join(", ")}`);
  if (problems.length) fail(problems.join("\n"));
  step("all scenarios passed");
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`FAILED: ${err.stack ?? err}`);
    if (problems.length) console.error(`seen in the pages:\n${problems.join("\n")}`);
    process.exit(1);
  },
);
