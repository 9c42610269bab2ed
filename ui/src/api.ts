// A small client of the public livechat API: every call carries the bearer
// token and X-Tenant-ID, and every answer is the guide's envelope.

import type { APIResponse, ChatMessage, ChatSession, Pagination } from "../../tests/typescript/guide-types";
import { t } from "./i18n";

export type { ChatMessage, Pagination };

/** A session as lists return it (the additive fields the server documents). */
export type Session = ChatSession & { opened_by?: number; closed_at?: string; unread_count?: number };

export const PREFIX = "/api/livechat";
const TIMEOUT_MS = 15_000;

/** A failed call: `status` 0 means the request never got an answer. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly errors: Record<string, string[]> | null = null,
  ) {
    super(code);
  }

  /** True when trying again later may succeed. */
  get retryable(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }

  /** A short reason for people. */
  describe(): string {
    if (this.status === 0) return t("errNetwork");
    if (this.status === 404) return t("errClosed");
    if (this.status === 429) return t("errRateLimited");
    if (this.status === 403) return t("errForbidden");
    const first = this.errors ? Object.values(this.errors)[0]?.[0] : undefined;
    return first ?? t("errGeneric", { code: this.code });
  }
}

export type Call = {
  method?: "GET" | "POST" | "PUT";
  tenant?: number;
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  idempotencyKey?: string;
};

export type Page<T> = { items: T[]; pagination: Pagination | undefined };

export class Api {
  /** Called on 401, so the app can ask for a new token. */
  onUnauthorized: () => void = () => {};

  constructor(private readonly token: string) {}

  async call<T>(path: string, opts: Call = {}): Promise<APIResponse<T>> {
    const url = new URL(PREFIX + path, location.origin);
    for (const [name, value] of Object.entries(opts.query ?? {})) {
      if (value !== undefined && value !== "") url.searchParams.set(name, String(value));
    }
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}`, Accept: "application/json" };
    if (opts.tenant !== undefined) headers["X-Tenant-ID"] = String(opts.tenant);
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    if (opts.idempotencyKey) headers["Idempotency-Key"] = opts.idempotencyKey;
    let res: Response;
    try {
      res = await fetch(url, {
        method: opts.method ?? "GET",
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: AbortSignal.timeout(TIMEOUT_MS),
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "network_error");
    }
    let envelope: APIResponse<T>;
    try {
      envelope = (await res.json()) as APIResponse<T>;
    } catch {
      throw new ApiError(res.status || 0, "unreadable_response");
    }
    if (!res.ok || !envelope.success) {
      if (res.status === 401) this.onUnauthorized();
      throw new ApiError(res.status, envelope.message, envelope.errors);
    }
    return envelope;
  }

  async data<T>(path: string, opts: Call = {}): Promise<T> {
    const envelope = await this.call<T>(path, opts);
    if (envelope.data === null) throw new ApiError(500, "empty_response");
    return envelope.data;
  }

  async page<T>(path: string, opts: Call = {}): Promise<Page<T>> {
    const envelope = await this.call<T[]>(path, opts);
    return { items: envelope.data ?? [], pagination: envelope.meta.pagination };
  }

  // The routes the UI uses, named after what they do.

  inbox(): Promise<Page<Session>> {
    return this.page<Session>("/agent/sessions", { query: { limit: 100 } });
  }

  latestSession(tenant: number): Promise<Page<Session>> {
    return this.page<Session>("/sessions", { tenant, query: { limit: 1 } });
  }

  session(tenant: number, id: string): Promise<Session> {
    return this.data<Session>(`/sessions/${id}`, { tenant });
  }

  openSession(tenant: number): Promise<Session> {
    return this.data<Session>("/sessions", { method: "POST", tenant });
  }

  sessionAction(tenant: number, id: string, action: "claim" | "close" | "transfer", body?: unknown): Promise<Session> {
    return this.data<Session>(`/sessions/${id}/${action}`, { method: "POST", tenant, body });
  }

  messages(tenant: number, id: string, query: Call["query"]): Promise<Page<ChatMessage>> {
    return this.page<ChatMessage>(`/sessions/${id}/messages`, { tenant, query });
  }

  send(tenant: number, id: string, message: string, idempotencyKey: string): Promise<ChatMessage> {
    return this.data<ChatMessage>(`/sessions/${id}/messages`, {
      method: "POST",
      tenant,
      body: { message },
      idempotencyKey,
    });
  }

  markRead(tenant: number, id: string, messageId: string): Promise<unknown> {
    return this.call(`/sessions/${id}/read`, { method: "POST", tenant, body: { message_id: messageId } });
  }

  presence(online: boolean): Promise<unknown> {
    return this.call("/agents/me/presence", { method: "PUT", body: { status: online ? "online" : "offline" } });
  }

  async ticket(tenant: number): Promise<string> {
    const data = await this.data<{ ticket: string }>("/realtime/tickets", { method: "POST", tenant });
    return data.ticket;
  }
}
