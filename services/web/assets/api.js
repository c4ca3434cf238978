// The page's session and its calls to the JSON API.
//
// Tokens (docs/decisions/0016-web-app.md): the refresh token lives in an HttpOnly cookie this
// script cannot read, sent only to /api/auth/web/*; the access token lives in this module's
// memory only (never localStorage). A reload asks /api/auth/web/refresh for a new one, proving
// with the X-CSRF-Token header that the request comes from our page. Refreshes are serialised
// across tabs with a Web Lock: the refresh token is single-use, and two tabs spending the same
// one at once would end the session.

const CSRF_COOKIE = "__Host-ww-csrf";

let access = null; // { token, expiresAt (ms), roles, userId }
let refreshTimer = null;
const listeners = new Set();

/** An answer of the API that is not a success; `problem` is its problem+json body. */
export class ApiError extends Error {
  constructor(status, problem, headers) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code || "";
    this.headers = headers;
  }
  /** Seconds the server asked us to wait (Retry-After), if it did. */
  get retryAfter() {
    const h = this.headers?.get("retry-after");
    const n = h == null ? NaN : Number(h);
    return Number.isFinite(n) ? n : null;
  }
}

function csrf() {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === CSRF_COOKIE) return v.join("=");
  }
  return "";
}

function claims(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload));
  } catch {
    return {};
  }
}

function adopt(body) {
  if (!body) {
    access = null;
  } else {
    const c = claims(body.accessToken);
    access = {
      token: body.accessToken,
      expiresAt: Date.now() + body.expiresIn * 1000,
      roles: c.roles || [],
      userId: c.sub,
    };
  }
  clearTimeout(refreshTimer);
  if (access) {
    // Refresh a minute before expiry (or halfway for very short tokens).
    const lead = Math.min(60_000, (access.expiresAt - Date.now()) / 2);
    refreshTimer = setTimeout(() => refresh().catch(() => {}), access.expiresAt - Date.now() - lead);
  }
  for (const f of listeners) f(session());
}

/** The signed-in person, or null. */
export function session() {
  return access && { userId: access.userId, roles: access.roles };
}

export function onSession(f) {
  listeners.add(f);
  return () => listeners.delete(f);
}

async function problemOf(response) {
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      /* fall through */
    }
  }
  return { title: response.statusText, detail: `The server answered ${response.status}.` };
}

async function sessionCall(path, init) {
  // Bounded: a stalled refresh would hold the cross-tab lock and freeze every tab.
  const response = await fetch(path, { credentials: "same-origin", cache: "no-store", signal: AbortSignal.timeout(15_000), ...init });
  if (!response.ok) throw new ApiError(response.status, await problemOf(response), response.headers);
  return response.status === 204 ? null : response.json();
}

let refreshing = null;

/** Gets a new access token with the refresh cookie; false when this browser has no session. */
export function refresh() {
  refreshing ||= (async () => {
    const run = async () => {
      try {
        adopt(await sessionCall("/api/auth/web/refresh", { method: "POST", headers: { "x-csrf-token": csrf() } }));
        return true;
      } catch (e) {
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
          adopt(null);
          return false;
        }
        throw e;
      }
    };
    try {
      return navigator.locks ? await navigator.locks.request("ww-refresh", run) : await run();
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

export async function login(email, password) {
  adopt(await sessionCall("/api/auth/web/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password }),
  }));
}

export async function signup(email, password, nickname) {
  await sessionCall("/api/auth/signup", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password, nickname }),
  });
  await login(email, password);
}

/**
 * Ends the session on the server. When the server cannot be reached, the CSRF cookie is dropped
 * here, which leaves this browser unable to use the refresh cookie: a shared computer is logged
 * out either way. Rejects with the error after signing out locally.
 */
export async function logout() {
  try {
    await sessionCall("/api/auth/web/logout", { method: "POST", headers: { "x-csrf-token": csrf() } });
  } catch (e) {
    document.cookie = `${CSRF_COOKIE}=; Path=/; Max-Age=0; Secure; SameSite=Strict`;
    throw e;
  } finally {
    adopt(null);
  }
}

/** The current access token, refreshed first when it is about to expire. */
export async function token() {
  if (access && access.expiresAt - Date.now() > 5_000) return access.token;
  if (await refresh()) return access.token;
  throw new ApiError(401, { code: "no-session", detail: "Log in again." });
}

/**
 * Calls the API with the access token. `body` is sent as JSON unless it is FormData.
 * Resolves to the parsed body (null for 204); rejects with ApiError.
 */
export async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
  const send = async () => {
    const h = { authorization: `Bearer ${await token()}`, ...headers };
    let payload = body;
    if (body !== undefined && !(body instanceof FormData)) {
      h["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
    return fetch(path, { method, headers: h, body: payload, signal, cache: "no-store" });
  };
  let response = await send();
  if (response.status === 401 && (await refresh())) response = await send();
  noteServerTime(response);
  if (!response.ok) throw new ApiError(response.status, await problemOf(response), response.headers);
  if (response.status === 204) return null;
  return response.json();
}

// The server's clock, as its Date headers tell it: countdowns count to the server's opening,
// not to whatever this device's clock says.
let offsetMs = 0;
let preciseOffset = false;

/** A server instant with milliseconds (a live frame's `at`) just received: a closer offset. */
export function noteFrameTime(iso) {
  const server = Date.parse(iso);
  if (Number.isFinite(server)) {
    offsetMs = server - Date.now();
    preciseOffset = true;
  }
}
function noteServerTime(response) {
  const date = response.headers.get("date");
  if (!date) return;
  const server = Date.parse(date);
  // Date has whole seconds: the middle of that second is the estimate (±0.5 s). Live frames,
  // with milliseconds, refine it (see noteFrameTime).
  if (Number.isFinite(server) && !preciseOffset) offsetMs = server + 500 - Date.now();
}

/** Now, on the server's clock (to about half a second). */
export function serverNow() {
  return Date.now() + offsetMs;
}

/**
 * Follows a Server-Sent Events stream with the access token (EventSource cannot send one),
 * reconnecting with backoff. Calls onEvent(name, data) per event and onState("live"|"retrying").
 * Returns a function that stops it.
 */
export function follow(path, onEvent, onState = () => {}) {
  const controller = new AbortController();
  let attempt = 0;
  (async () => {
    while (!controller.signal.aborted) {
      // One connection: aborted by stop(), or when nothing arrived for STALL_MS (the server
      // sends every second; a half-open connection after a network change stays silent).
      const connection = new AbortController();
      const stopAll = () => connection.abort();
      controller.signal.addEventListener("abort", stopAll);
      let watchdog = setTimeout(() => connection.abort(), STALL_MS);
      try {
        const response = await fetch(path, {
          headers: { authorization: `Bearer ${await token()}`, accept: "text/event-stream" },
          signal: connection.signal,
          cache: "no-store",
        });
        if (!response.ok) throw new ApiError(response.status, await problemOf(response), response.headers);
        onState("live");
        attempt = 0;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          clearTimeout(watchdog);
          watchdog = setTimeout(() => connection.abort(), STALL_MS);
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let name = "message";
            const data = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) name = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
            }
            if (data.length) onEvent(name, JSON.parse(data.join("\n")));
          }
        }
      } catch (e) {
        if (controller.signal.aborted) return;
        // The token was refused: one refresh; none left means signed out.
        if (e instanceof ApiError && e.status === 401 && !(await refresh().catch(() => false))) {
          onState("signed-out");
          return;
        }
      } finally {
        clearTimeout(watchdog);
        controller.signal.removeEventListener("abort", stopAll);
      }
      if (controller.signal.aborted) return;
      onState("retrying");
      attempt += 1;
      await new Promise((r) => setTimeout(r, Math.min(10_000, 250 * 2 ** Math.min(attempt, 6))));
    }
  })();
  return () => controller.abort();
}

const STALL_MS = 5_000;
