// The public API on the page's own origin, and what its refusals mean in words.
//
// The session (the token, who is signed in, the open conversation) lives in memory and in
// sessionStorage: a reload keeps it in this tab, another tab or a closed browser asks to
// log in again, and logging out forgets it. The token only ever travels in the
// Authorization header, never in a URL, and it is never logged.

const SESSION_KEY = "anonchat.session";
// The largest cursor: `before` it is the newest page of a conversation.
const NEWEST = "9223372036854775807";

export class ApiError extends Error {
  constructor(words, { status = 0, code = "", retryAfter = null } = {}) {
    super(words);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  // Worth sending again as it was: no answer, or the service is briefly unavailable.
  get transient() {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

export class SessionEnded extends ApiError {
  constructor() {
    super("Your session has ended: please log in again.", { status: 401, code: "session_ended" });
  }
}

const FIELDS = { username: "The name", password: "The password", content: "The message" };

// "Too many <what>: try again in N s", with `what` said for the action that was refused.
const TOO_MANY = {
  login: "Too many login attempts",
  register: "Too many registrations from here",
  send: "Too many messages",
};

function seconds(response) {
  const value = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  return Number.isFinite(value) && value >= 0 ? value : null;
}

// What a refused request means to the person who made it.
function words(action, status, body, retryAfter) {
  if (status === 401 && action === "login") return "Wrong name or password.";
  if (status === 401 && action === "erase") return "Wrong password.";
  if (status === 409 && action === "register") {
    const detail = String(body?.detail ?? "");
    if (detail.includes("looks too much like")) {
      return "That name looks too much like one already taken: pick another.";
    }
    const free = detail.includes("erased") ? detail.match(/from (\S+)$/)?.[1] : null;
    if (free) return `That name belonged to an account erased lately: it is free again from ${free}.`;
    return "That name is taken: pick another.";
  }
  if (status === 404 && action === "send") return "That person no longer exists.";
  if (status === 429) {
    const wait = retryAfter === null ? "in a moment" : `in ${retryAfter} s`;
    return `${TOO_MANY[action] ?? "Too many requests"}: try again ${wait}.`;
  }
  if (status === 413) return "That is too long.";
  if (status === 422 && Array.isArray(body?.errors) && body.errors.length > 0) {
    return body.errors
      .map(({ field, message }) => `${FIELDS[field] ?? "It"} ${message}.`)
      .join(" ");
  }
  if (status >= 500) return "anonchat is unavailable right now: try again in a moment.";
  if (typeof body?.detail === "string" && body.detail) {
    return body.detail.charAt(0).toUpperCase() + body.detail.slice(1) + ".";
  }
  return `That did not work (error ${status}).`;
}

export function loadSession() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
    return saved && typeof saved.token === "string" ? saved : null;
  } catch {
    return null;
  }
}

export class Api {
  constructor(session = null) {
    this.session = session;
    this.refreshing = null;
    this.onSessionEnd = () => {};
  }

  save() {
    if (this.session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(this.session));
  }

  forget() {
    this.session = null;
    sessionStorage.removeItem(SESSION_KEY);
  }

  authorization() {
    return { Authorization: `Bearer ${this.session.token}` };
  }

  // One request; the answer's JSON, or an ApiError in words. `action` picks the words;
  // `keepalive` lets it finish when the page is left (a reload, a closed tab).
  async request(method, path, options = {}) {
    const { body, headers = {}, action = "", auth = true, keepalive = false, renewed = false } = options;
    const sent = { ...headers };
    if (body !== undefined) sent["Content-Type"] = "application/json";
    let response;
    try {
      if (auth) Object.assign(sent, this.authorization());
      response = await fetch(path, {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
        keepalive,
      });
    } catch {
      throw new ApiError("Cannot reach anonchat: check the connection.");
    }
    if (response.status === 401 && auth && refusesToken(response)) {
      // An expired access token: renew it once, then try again with the new one. (A 401
      // without the Bearer challenge refuses something else, such as a wrong password.)
      if (renewed) this.endSession();
      await this.renew();
      return this.request(method, path, { ...options, renewed: true });
    }
    const text = await response.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      const retryAfter = seconds(response);
      throw new ApiError(words(action, response.status, parsed, retryAfter), {
        status: response.status,
        code: parsed?.code ?? "",
        retryAfter,
      });
    }
    return { body: parsed, headers: response.headers };
  }

  async register(username, password) {
    await this.request("POST", "/register", {
      body: { username, password },
      action: "register",
      auth: false,
    });
  }

  async login(username, password) {
    const { body } = await this.request("POST", "/login", {
      body: { username, password },
      action: "login",
      auth: false,
    });
    this.session = { token: body.access_token, refreshToken: body.refresh_token ?? null };
    return this.session;
  }

  // A new access token (and refresh token: each works once) for this session, else the
  // end of the session. Concurrent callers share one renewal.
  renew() {
    this.refreshing ??= this.refresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  async refresh() {
    const refreshToken = this.session?.refreshToken;
    if (refreshToken) {
      try {
        const { body } = await this.request("POST", "/token/refresh", {
          body: { refresh_token: refreshToken },
          auth: false,
        });
        this.session.token = body.access_token;
        this.session.refreshToken = body.refresh_token ?? null;
        this.save();
        return;
      } catch (error) {
        // Unreachable or busy is not the end of the session: the caller tries again.
        if (error.transient || error.status === 429) throw error;
      }
    }
    this.endSession();
  }

  endSession() {
    this.onSessionEnd();
    throw new SessionEnded();
  }

  // Ends the session on the server (POST /logout: its tokens are refused everywhere
  // within a second), and forgets it here whatever the answer.
  async logout() {
    if (!this.session) return;
    const headers = this.authorization();
    this.forget();
    try {
      await fetch("/logout", { method: "POST", headers, cache: "no-store", credentials: "omit" });
    } catch {
      // Offline: the token is forgotten here all the same, and it expires by itself.
    }
  }

  // Every user in id order after `afterId`, a page of 1000 at a time.
  async usersAfter(afterId) {
    const users = [];
    for (;;) {
      const last = users.length ? users[users.length - 1].id : afterId;
      const { body } = await this.request("GET", `/get_users?limit=1000&after_id=${last}`);
      users.push(...body);
      if (body.length < 1000) return users;
    }
  }

  // The newest page of a conversation (oldest first), or the page `path` names; `older`
  // is the path of the page before it (its Link rel="prev"), null at the first message.
  async historyPage(withUser, limit, path = null) {
    const first = `/get_messages?with_user=${withUser}&limit=${limit}&before=${NEWEST}`;
    const { body, headers } = await this.request("GET", path ?? first);
    return { messages: body, older: linked(headers.get("Link"), "prev") };
  }

  // The caller's conversations, the latest first: [{user_id, last_cursor, unread}].
  async conversations() {
    return (await this.request("GET", "/conversations?limit=1000")).body;
  }

  markRead(userId, upTo) {
    return this.request("POST", `/conversations/${userId}/read`, {
      body: { up_to: upTo },
      keepalive: true,
    });
  }

  deleteMessage(id) {
    return this.request("DELETE", `/messages/${id}`);
  }

  // The account, or null for one that is gone (erased).
  async user(id) {
    try {
      return (await this.request("GET", `/users/${id}`)).body;
    } catch (error) {
      if (error.status === 404) return null;
      throw error;
    }
  }

  async blocks() {
    return (await this.request("GET", "/blocks")).body;
  }

  block(userId, blocked) {
    return this.request(blocked ? "PUT" : "DELETE", `/blocks/${userId}`);
  }

  async me() {
    return (await this.request("GET", "/me")).body;
  }

  async setReadReceipts(on) {
    return (await this.request("PATCH", "/me", { body: { read_receipts: on } })).body;
  }

  // Erases the account (DELETE /me with the password) and forgets the session.
  async erase(password) {
    await this.request("DELETE", "/me", { body: { password }, action: "erase" });
    this.forget();
  }

  send(receiverId, content, key) {
    return this.request("POST", "/send_message", {
      body: { content, receiver_id: receiverId },
      headers: { "Idempotency-Key": key },
      action: "send",
    });
  }
}

// A 401 that refuses the access token says so with a Bearer challenge.
function refusesToken(response) {
  return /^Bearer\b/i.test(response.headers.get("WWW-Authenticate") ?? "");
}

// The path and query a Link header names for `rel`, else null: asked of this origin
// whatever host the server put in it (behind a proxy it may name its own).
function linked(link, rel) {
  for (const part of (link ?? "").split(",")) {
    const match = part.match(/<([^>]*)>\s*;\s*rel="([^"]*)"/);
    if (match && match[2].split(" ").includes(rel)) {
      const url = new URL(match[1], location.href);
      return url.pathname + url.search;
    }
  }
  return null;
}

// A random key for Idempotency-Key. crypto.randomUUID exists only in secure contexts, and
// a page served over plain HTTP on a LAN address is not one; getRandomValues always is.
export function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
