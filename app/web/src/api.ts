// The typed client of the server's HTTP API v1 (app/server/API.md): the
// session kept in localStorage (so a reload does not log out), the access
// token refreshed once when it expires, and every error turned into an
// `ApiError` with the server's stable code.

export type ValenceLabel = "negative" | "neutral" | "positive";

export interface Mood {
  valence: number;
  valence_label: ValenceLabel;
  valence_probability: number | null;
  arousal: number;
  dominant_emotion: string;
  confidence: number;
  emotions: Record<string, number>;
  model_id: string;
  windows: number;
}

export interface Entry {
  entry_id: string;
  text: string;
  revision: number;
  created_at: string;
  updated_at: string;
  mood: Mood | null;
}

export interface Day {
  date: string;
  entries: number;
  mean_valence: number;
  dominant_emotion: string;
  emotion_counts: Record<string, number>;
}

export interface Match {
  user_id: string;
  display_name: string;
  score: number;
  explanation: {
    shared_emotions: string[];
    theme_similarity: number;
    mood_similarity: number;
  };
}

export interface Me {
  user_id: string;
  email: string;
  display_name: string;
}

/** The most bytes of UTF-8 an entry's text may have (API.md, 422 `invalid_field`). */
export const MAX_ENTRY_BYTES = 16_384;

/** A refused or failed request: the server's error code, or `network` / `session_expired`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly retryAfterSecs?: number,
    readonly currentRevision?: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

interface Session {
  token: string;
  expires_at: string;
  refresh_token: string;
  refresh_expires_at: string;
  user_id: string;
}

const SESSION_KEY = "metachat.session";

function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(SESSION_KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Partial<Session>;
    if (typeof s.token !== "string" || typeof s.refresh_token !== "string") return null;
    return s as Session;
  } catch {
    return null;
  }
}

function storeSession(s: Session | null): void {
  try {
    if (s) localStorage.setItem(SESSION_KEY, JSON.stringify(s));
    else localStorage.removeItem(SESSION_KEY);
  } catch {
    // Storage off: the session lasts this page only.
  }
}

/** Refresh this long before the access token's expiry, for clock skew and latency. */
const REFRESH_MARGIN_MS = 30_000;

type Listener = () => void;

/** The API of one origin (the page's own). */
export class Api {
  private session: Session | null = loadSession();
  private refreshing: Promise<boolean> | null = null;
  private readonly expiredListeners = new Set<Listener>();

  /** Whether a session is kept (the user counts as logged in). */
  get loggedIn(): boolean {
    return this.session !== null;
  }

  /** Calls `fn` when the session ends without a logout: refresh refused, token revoked. */
  onSessionExpired(fn: Listener): () => void {
    this.expiredListeners.add(fn);
    return () => this.expiredListeners.delete(fn);
  }

  async register(email: string, password: string, displayName: string): Promise<void> {
    await this.call("POST", "/v1/users", { email, password, display_name: displayName }, false);
  }

  async login(email: string, password: string): Promise<void> {
    const s = await this.call<Session>("POST", "/v1/sessions", { email, password }, false);
    this.session = pickSession(s);
    storeSession(this.session);
  }

  /** Ends the session on the server (best effort) and forgets it here. */
  async logout(): Promise<void> {
    try {
      if (this.session) await this.call("DELETE", "/v1/sessions/current");
    } catch {
      // Already expired or unreachable: forgetting it here is what matters.
    } finally {
      this.forget();
    }
  }

  /** Forgets the session here without calling the server. */
  forget(): void {
    this.session = null;
    storeSession(null);
  }

  me(): Promise<Me> {
    return this.call("GET", "/v1/me");
  }

  async erase(): Promise<void> {
    await this.call("DELETE", "/v1/me");
    this.forget();
  }

  createEntry(text: string): Promise<{ entry_id: string; revision: number; created_at: string }> {
    return this.call("POST", "/v1/entries", { text });
  }

  listEntries(cursor: string | null, limit = 20): Promise<{ entries: Entry[]; next_cursor: string | null }> {
    const q = new URLSearchParams({ limit: String(limit) });
    if (cursor) q.set("cursor", cursor);
    return this.call("GET", `/v1/entries?${q}`);
  }

  getEntry(id: string): Promise<Entry> {
    return this.call("GET", `/v1/entries/${encodeURIComponent(id)}`);
  }

  editEntry(id: string, text: string, expectedRevision: number): Promise<{ revision: number }> {
    return this.call("PUT", `/v1/entries/${encodeURIComponent(id)}`, {
      text,
      expected_revision: expectedRevision,
    });
  }

  async deleteEntry(id: string, expectedRevision: number): Promise<void> {
    await this.call(
      "DELETE",
      `/v1/entries/${encodeURIComponent(id)}?expected_revision=${expectedRevision}`,
    );
  }

  timeline(from: string | null, to: string | null): Promise<{ days: Day[] }> {
    const q = new URLSearchParams();
    if (from) q.set("from", from);
    if (to) q.set("to", to);
    return this.call("GET", `/v1/mood/timeline?${q}`);
  }

  matches(k = 10): Promise<{ matches: Match[] }> {
    return this.call("GET", `/v1/matches?k=${k}`);
  }

  /** One request; with `auth`, the bearer token, refreshed once on a 401. */
  private async call<T>(method: string, path: string, body?: unknown, auth = true): Promise<T> {
    if (auth) {
      // Logged out already (a request still under way): no notice.
      if (!this.session) throw new ApiError(401, "session_expired", "not logged in");
      if (Date.parse(this.session.expires_at) - REFRESH_MARGIN_MS < Date.now()) {
        if (!(await this.refresh())) throw this.expired();
      }
    }
    let res = await this.send(method, path, body, auth);
    if (auth && res.status === 401) {
      if (!(await this.refresh())) throw this.expired();
      res = await this.send(method, path, body, auth);
      if (res.status === 401) {
        this.forget();
        throw this.expired();
      }
    }
    if (!res.ok) throw await errorOf(res);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  private async send(method: string, path: string, body: unknown, auth: boolean): Promise<Response> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (auth && this.session) headers.authorization = `Bearer ${this.session.token}`;
    try {
      return await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (e) {
      throw new ApiError(0, "network", e instanceof Error ? e.message : String(e));
    }
  }

  /** Trades the refresh token for a new session; one refresh at a time. */
  private refresh(): Promise<boolean> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async doRefresh(): Promise<boolean> {
    const s = this.session;
    if (!s) return false;
    const res = await this.send("POST", "/v1/sessions/refresh", { refresh_token: s.refresh_token }, false);
    if (res.ok) {
      this.session = pickSession((await res.json()) as Session);
      storeSession(this.session);
      return true;
    }
    if (res.status === 401) {
      this.forget();
      return false;
    }
    throw await errorOf(res);
  }

  /** The error of a session the server no longer honours; tells the listeners. */
  private expired(): ApiError {
    for (const fn of this.expiredListeners) fn();
    return new ApiError(401, "session_expired", "the session has expired");
  }
}

function pickSession(s: Session): Session {
  return {
    token: s.token,
    expires_at: s.expires_at,
    refresh_token: s.refresh_token,
    refresh_expires_at: s.refresh_expires_at,
    user_id: s.user_id,
  };
}

/** The `ApiError` of an error answer; one without the JSON shape (a proxy's page) keeps its status. */
async function errorOf(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = res.statusText;
  let field: string | undefined;
  let retry: number | undefined;
  let current: number | undefined;
  try {
    const body = (await res.json()) as { error?: Record<string, unknown> };
    const e = body.error;
    if (e && typeof e.code === "string") {
      code = e.code;
      if (typeof e.message === "string") message = e.message;
      if (typeof e.field === "string") field = e.field;
      if (typeof e.retry_after_secs === "number") retry = e.retry_after_secs;
      if (typeof e.current_revision === "number") current = e.current_revision;
    }
  } catch {
    // Not JSON: the status says enough.
  }
  if (retry === undefined) {
    const header = Number(res.headers.get("retry-after"));
    if (Number.isFinite(header) && header > 0) retry = header;
  }
  if (code === `http_${res.status}`) {
    if (res.status === 413) code = "body_too_large";
    else if (res.status === 502 || res.status === 503 || res.status === 504) code = "unavailable";
  }
  return new ApiError(res.status, code, message, field, retry, current);
}

/** The UTF-8 length of a text, as the server counts it. */
export function utf8Bytes(text: string): number {
  return new TextEncoder().encode(text).length;
}
