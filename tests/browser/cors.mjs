// CORS from a real browser: a page on another origin calls the API with the
// headers the frontend sends (so the browser sends a preflight), and reads
// the exposed headers; a page on an origin that is not allowed cannot.
// Run by tests/api/browser.rs, which starts the API with ALLOWED_ORIGIN
// allowed. Prints one JSON line of results; exits non-zero on failure.

import { chromium } from "playwright-core";
import { createServer } from "node:http";

const API = need("API_URL");
const TOKEN = need("TOKEN");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const PORTS = [Number(need("ALLOWED_PORT")), Number(need("OTHER_PORT"))];

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

// Two "frontends", on two origins, serving an empty page.
const servers = await Promise.all(
  PORTS.map(
    (port) =>
      new Promise((resolve, reject) => {
        const server = createServer((_, res) => {
          res.writeHead(200, { "content-type": "text/html" });
          res.end("<!doctype html><title>frontend</title>");
        });
        server.on("error", reject);
        server.listen(port, "127.0.0.1", () => resolve(server));
      }),
  ),
);

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

// What a page at `port` gets when it calls the API as the frontend would.
async function callFrom(port) {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/`);
  const result = await page.evaluate(
    async ({ api, token }) => {
      const headers = { Authorization: `Bearer ${token}`, "X-Tenant-ID": "1", "Content-Type": "application/json" };
      try {
        const opened = await fetch(`${api}/api/livechat/sessions`, { method: "POST", headers, body: "{}" });
        const listed = await fetch(`${api}/api/livechat/sessions`, { headers: { ...headers, "X-Request-ID": "from-the-browser" } });
        return {
          ok: true,
          opened: opened.status,
          listed: listed.status,
          requestId: listed.headers.get("x-request-id"),
          body: (await listed.json()).success,
        };
      } catch (err) {
        return { ok: false, error: String(err) };
      }
    },
    { api: API, token: TOKEN },
  );
  await page.close();
  return result;
}

let exit = 0;
try {
  const allowed = await callFrom(PORTS[0]);
  const other = await callFrom(PORTS[1]);
  console.log(JSON.stringify({ allowed, other }));
  if (!(allowed.ok && allowed.opened === 201 && allowed.listed === 200 && allowed.requestId === "from-the-browser" && allowed.body === true)) {
    console.error("the allowed origin could not use the API as the frontend does");
    exit = 1;
  }
  if (other.ok) {
    console.error("an origin that is not allowed could read the API's answers");
    exit = 1;
  }
} finally {
  await browser.close();
  servers.forEach((s) => s.close());
}
process.exit(exit);
