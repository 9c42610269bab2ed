// The signed-in user, read from the token's payload. The server verifies the
// signature on every request; the UI only reads who it is and where it may act.

export const SUPPORT_AGENT = "support_agent";
const STORAGE_KEY = "livechat.token";

export type Claims = {
  sub?: string | number;
  roles?: string[];
  tenants?: Record<string, string[]>;
  exp?: number;
};

export type Me = {
  token: string;
  userId: number;
  /** A platform support agent acts in every tenant. */
  platformAgent: boolean;
  /** Tenants where the token names any role, with those roles. */
  tenants: Map<number, string[]>;
  expiresAt?: Date;
};

function base64UrlJson(part: string): unknown {
  const padded = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** Reads a JWT's payload; `null` when it is not one. */
export function parseToken(raw: string): Me | null {
  const token = raw.trim().replace(/^Bearer\s+/i, "");
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return null;
  let claims: Claims;
  try {
    claims = base64UrlJson(parts[1]) as Claims;
  } catch {
    return null;
  }
  const userId = Number(claims.sub);
  if (!Number.isSafeInteger(userId) || userId <= 0) return null;
  const tenants = new Map<number, string[]>();
  for (const [tenant, roles] of Object.entries(claims.tenants ?? {})) {
    const n = Number(tenant);
    if (Number.isSafeInteger(n) && n > 0 && Array.isArray(roles)) tenants.set(n, roles.map(String));
  }
  return {
    token,
    userId,
    platformAgent: Array.isArray(claims.roles) && claims.roles.includes(SUPPORT_AGENT),
    tenants,
    expiresAt: typeof claims.exp === "number" ? new Date(claims.exp * 1000) : undefined,
  };
}

/** True when the token can act as an agent somewhere: the console rather than the widget. */
export function isAgent(me: Me): boolean {
  return me.platformAgent || [...me.tenants.values()].some((roles) => roles.includes(SUPPORT_AGENT));
}

/**
 * The token to use: one handed over in the URL fragment (`#token=…`, never the
 * query, so it reaches neither the server's logs nor a Referer) wins and is
 * moved to this tab's storage at once; otherwise the one this tab stored.
 */
export function takeToken(): string | null {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const handed = fragment.get("token");
  if (handed) {
    sessionStorage.setItem(STORAGE_KEY, handed);
    history.replaceState(null, "", location.pathname + location.search);
    return handed;
  }
  return sessionStorage.getItem(STORAGE_KEY);
}

export function storeToken(token: string): void {
  sessionStorage.setItem(STORAGE_KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}
