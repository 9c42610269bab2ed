// One WebSocket per page, carrying every session the page shows. It is
// authorised by a single-use ticket (browsers cannot send headers on a
// WebSocket), reconnects by itself with growing delays, and resubscribes each
// session with the last event id it saw, so nothing is lost across a
// disconnect or a server restart and nothing arrives twice.

import { Api, ApiError, PREFIX } from "./api";
import type { ChatMessage, Session } from "./api";

export type ConnState = "connecting" | "online" | "reconnecting" | "paused" | "expired";

export type EventFrame =
  | { type: "event"; event: "message.created"; id: string; session_id: string; tenant_id: number; data: ChatMessage }
  | { type: "event"; event: "session.updated"; id: string; session_id: string; tenant_id: number; data: Session }
  | { type: "event"; event: "typing"; session_id: string; tenant_id: number; data: { user_id: number } }
  | {
      type: "event";
      event: "read";
      session_id: string;
      tenant_id: number;
      data: { user_id: number; message_id: string; read_at: string };
    }
  | { type: "event"; event: "presence"; session_id?: string; data: { agent_id: number; status: "online" | "offline" } };

export type Frame =
  | EventFrame
  | { type: "subscribed"; session_id: string; tenant_id: number }
  | { type: "unsubscribed"; session_id: string; tenant_id: number; reason: string }
  | { type: "watching_inbox" }
  | { type: "pong" }
  | { type: "error"; code: string; message: string; session_id?: string };

type Sub = { tenant: number; lastEventId?: string };

const DELAYS_MS = [300, 1000, 2000, 4000, 8000];
const PING_EVERY_MS = 20_000;
const SILENT_LIMIT_MS = 50_000;
const TOKEN_EXPIRED = 4001;

export class Realtime {
  state: ConnState = "connecting";
  private ws: WebSocket | null = null;
  private readonly subs = new Map<string, Sub>();
  private inbox = false;
  private attempt = 0;
  private retryTimer: number | undefined;
  private pingTimer: number | undefined;
  private lastFrameAt = 0;
  private paused = true;
  private readonly frameListeners = new Set<(frame: Frame) => void>();
  private readonly stateListeners = new Set<(state: ConnState) => void>();

  constructor(
    private readonly api: Api,
    private readonly ticketTenant: number,
  ) {}

  onFrame(listener: (frame: Frame) => void): () => void {
    this.frameListeners.add(listener);
    return () => this.frameListeners.delete(listener);
  }

  onState(listener: (state: ConnState) => void): () => void {
    this.stateListeners.add(listener);
    listener(this.state);
    return () => this.stateListeners.delete(listener);
  }

  /** Connects (again) and keeps connecting until paused. */
  start(): void {
    if (!this.paused) return;
    this.paused = false;
    this.attempt = 0;
    this.setState("connecting");
    void this.connect();
  }

  /** Closes the connection and stays disconnected (an agent going offline). */
  pause(): void {
    this.paused = true;
    window.clearTimeout(this.retryTimer);
    this.ws?.close(1000, "paused");
    this.ws = null;
    this.setState("paused");
  }

  /** Receives a session's events; `lastEventId` resumes after what the caller already holds. */
  subscribe(sessionId: string, tenant: number, lastEventId?: string): void {
    const known = this.subs.get(sessionId);
    const sub: Sub = { tenant, lastEventId: known?.lastEventId ?? lastEventId };
    this.subs.set(sessionId, sub);
    this.sendSubscribe(sessionId, sub);
  }

  unsubscribe(sessionId: string): void {
    const sub = this.subs.get(sessionId);
    if (!sub) return;
    this.subs.delete(sessionId);
    this.send({ type: "unsubscribe", session_id: sessionId, tenant_id: sub.tenant });
  }

  isSubscribed(sessionId: string): boolean {
    return this.subs.has(sessionId);
  }

  /** The last persisted event seen for a session, if any. */
  lastEventId(sessionId: string): string | undefined {
    return this.subs.get(sessionId)?.lastEventId;
  }

  /** Records the newest id loaded over HTTP, unless the stream already went further. */
  seed(sessionId: string, id: string): void {
    const sub = this.subs.get(sessionId);
    if (sub && !sub.lastEventId) sub.lastEventId = id;
  }

  watchInbox(): void {
    this.inbox = true;
    this.send({ type: "watch_inbox" });
  }

  typing(sessionId: string): void {
    const sub = this.subs.get(sessionId);
    if (sub) this.send({ type: "typing", session_id: sessionId, tenant_id: sub.tenant });
  }

  private setState(state: ConnState): void {
    if (this.state === state) return;
    this.state = state;
    for (const listener of this.stateListeners) listener(state);
  }

  private send(frame: object): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  private sendSubscribe(sessionId: string, sub: Sub): void {
    this.send({ type: "subscribe", session_id: sessionId, tenant_id: sub.tenant, last_event_id: sub.lastEventId });
  }

  private async connect(): Promise<void> {
    let ticket: string;
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
      let frame: Frame;
      try {
        frame = JSON.parse(msg.data) as Frame;
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
  private keepAlive(ws: WebSocket): void {
    window.clearInterval(this.pingTimer);
    this.pingTimer = window.setInterval(() => {
      if (this.ws !== ws) return;
      if (Date.now() - this.lastFrameAt > SILENT_LIMIT_MS) {
        ws.close(4000, "silent");
        return;
      }
      this.send({ type: "ping" });
    }, PING_EVERY_MS);
  }

  private retry(): void {
    if (this.paused) return;
    this.setState("reconnecting");
    const base = DELAYS_MS[Math.min(this.attempt, DELAYS_MS.length - 1)] ?? 8000;
    this.attempt += 1;
    const delay = base + Math.random() * base * 0.3;
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => void this.connect(), delay);
  }
}
