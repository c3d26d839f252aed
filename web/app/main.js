// The chat page: sign in, the people, one open conversation, the composer.
//
// What the page knows comes from three places: GET /get_users (names), the event stream
// (every message of the caller's, from the first, then live: who they talk to and what
// is unread) and GET /get_messages (the open conversation's history).

import { Api, loadSession, randomKey } from "./api.js";
import { EventStream } from "./stream.js";
import { el, reconcile, setText, when } from "./view.js";

// Messages added to the view at a time, at the start and each time one scrolls up.
const SHOWN = 50;
// A conversation's history comes in pages of this many (the API's largest).
const HISTORY_PAGE = 1000;
// The people list shows at most this many names; the search box narrows it.
const LISTED = 100;
const MAX_RETRY_MS = 30_000;

const $ = (id) => document.getElementById(id);
const ui = {
  connection: $("connection"),
  account: $("account"),
  me: $("me"),
  logout: $("logout"),
  signinView: $("signin-view"),
  signin: $("signin"),
  username: $("username"),
  password: $("password"),
  signinError: $("signin-error"),
  chatView: $("chat-view"),
  search: $("search"),
  users: $("users"),
  usersNote: $("users-note"),
  back: $("back"),
  peer: $("peer"),
  log: $("log"),
  older: $("older"),
  logNote: $("log-note"),
  messages: $("messages"),
  composer: $("composer"),
  text: $("text"),
  send: $("send"),
};

const api = new Api(loadSession());
let chat = null;

// Everything the page holds for one signed-in session; dropped whole at logout.
class Chat {
  constructor(session) {
    this.session = session;
    session.read ??= {};
    this.me = session.me;
    this.users = new Map();
    this.lastUserId = 0;
    // Per person talked to: the last cursor, the last cursor of the caller's own, unread.
    this.peers = new Map();
    // Sends not yet seen stored, per receiver, in the order they were written.
    this.pending = new Map();
    // Own messages the stream showed stored before their 202 was read.
    this.storedEarly = new Set();
    this.open = null;
    this.usersLoading = null;
    this.renders = null;
    this.stream = new EventStream(api, {
      onEvent: (event) => this.onEvent(event),
      onState: (state, detail) => showConnection(state, detail),
    });
  }

  async start() {
    await this.refreshUsers();
    if (chat !== this) return;
    this.stream.start();
    if (this.session.open) await this.openConversation(this.session.open, { focus: false });
    else ui.search.focus();
  }

  stop() {
    this.stream.stop();
    this.open = null;
  }

  // Names of everyone registered since the last look; one look at a time.
  refreshUsers() {
    this.usersLoading ??= api
      .usersAfter(this.lastUserId)
      .then((users) => {
        if (chat !== this) return;
        for (const user of users) this.users.set(user.id, user);
        if (users.length) this.lastUserId = users[users.length - 1].id;
        if (this.users.has(this.me.id)) this.me.name = this.users.get(this.me.id).username;
        setText(ui.me, this.me.name);
        this.renderUsers();
        if (this.open) setText(ui.peer, this.nameOf(this.open.peer));
      })
      .catch((error) => setText(ui.usersNote, error.message))
      .finally(() => {
        this.usersLoading = null;
      });
    return this.usersLoading;
  }

  nameOf(id) {
    return this.users.get(id)?.username ?? `user ${id}`;
  }

  peer(id) {
    let peer = this.peers.get(id);
    if (!peer) {
      peer = { last: 0, lastSent: 0, unread: 0 };
      this.peers.set(id, peer);
    }
    return peer;
  }

  onEvent({ event, data }) {
    if (event === "message") this.onMessage(data);
    else if (event === "failed") this.onFailed(data);
  }

  onMessage(message) {
    const mine = message.sender_id === this.me.id;
    const peerId = mine ? message.receiver_id : message.sender_id;
    const peer = this.peer(peerId);
    peer.last = Math.max(peer.last, message.cursor);
    const open = this.open?.peer === peerId;
    if (mine) {
      // Writing to someone means having read what they wrote before.
      peer.lastSent = Math.max(peer.lastSent, message.cursor);
      peer.unread = 0;
      if (!this.dropPending(peerId, message.id)) this.rememberStored(message.id);
    } else if (!open && message.cursor > (this.session.read[peerId] ?? 0)) {
      peer.unread += 1;
    }
    if (!this.users.has(peerId)) this.refreshUsers();
    if (open) {
      this.open.add(message);
      this.markRead(peerId);
    }
    this.render({ conversation: open });
  }

  // Renders once for all the events of a chunk of the stream (a reconnect may bring
  // thousands at once), not once per event.
  render({ users = true, conversation = false } = {}) {
    if (!this.renders) {
      this.renders = { users: false, conversation: false };
      queueMicrotask(() => {
        const { users: list, conversation: open } = this.renders;
        this.renders = null;
        if (chat !== this) return;
        if (list) this.renderUsers();
        if (open && this.open) renderConversation(this);
      });
    }
    this.renders.users ||= users;
    this.renders.conversation ||= conversation;
  }

  onFailed({ id, receiver_id: receiverId, reason }) {
    const send = (this.pending.get(receiverId) ?? []).find((p) => p.id === id);
    if (!send) return;
    send.state = "failed";
    send.reason = reason;
    this.renderIfOpen(receiverId);
  }

  rememberStored(id) {
    this.storedEarly.add(id);
    if (this.storedEarly.size > 1000) this.storedEarly.delete(this.storedEarly.values().next().value);
  }

  dropPending(peerId, id) {
    const sends = this.pending.get(peerId) ?? [];
    const index = sends.findIndex((p) => p.id === id);
    if (index < 0) return false;
    sends.splice(index, 1);
    return true;
  }

  markRead(peerId) {
    const peer = this.peer(peerId);
    peer.unread = 0;
    if (peer.last > (this.session.read[peerId] ?? 0)) {
      this.session.read[peerId] = peer.last;
      api.save();
    }
  }

  async openConversation(peerId, { focus = true } = {}) {
    const conversation = new Conversation(peerId);
    this.open = conversation;
    this.session.open = peerId;
    this.markRead(peerId);
    api.save();
    ui.chatView.classList.add("open");
    setText(ui.peer, this.nameOf(peerId));
    ui.text.disabled = false;
    ui.send.disabled = false;
    ui.text.placeholder = `Write to ${this.nameOf(peerId)}`;
    renderConversation(this, { bottom: true });
    this.renderUsers();
    if (focus) ui.text.focus();
    try {
      // The API pages forwards only: the whole history comes in, the newest part shows.
      let cursor = 0;
      while (cursor !== null && this.open === conversation) {
        const page = await api.conversationPage(peerId, cursor, HISTORY_PAGE);
        for (const message of page.messages) conversation.add(message);
        cursor = page.next;
      }
      conversation.loaded = true;
    } catch (error) {
      conversation.problem = error.message;
    }
    if (this.open === conversation) {
      conversation.shown = Math.max(conversation.shown, Math.min(SHOWN, conversation.order.length));
      this.markRead(peerId);
      renderConversation(this, { bottom: true });
    }
  }

  closeConversation() {
    const peerId = this.open?.peer;
    this.open = null;
    this.session.open = null;
    api.save();
    ui.chatView.classList.remove("open");
    setText(ui.peer, "Pick someone to talk to");
    ui.text.disabled = true;
    ui.send.disabled = true;
    renderConversation(this);
    this.renderUsers();
    ui.users.querySelector(`[data-user="${peerId}"]`)?.focus();
  }

  // The people list: those talked to most recently first, then everyone else by id.
  renderUsers() {
    const query = ui.search.value.trim().toLowerCase();
    const matching = [...this.users.values()].filter(
      (user) => !query || user.username.toLowerCase().includes(query),
    );
    const last = (user) => this.peers.get(user.id)?.last ?? 0;
    matching.sort((a, b) => last(b) - last(a) || a.id - b.id);
    const shown = matching.slice(0, LISTED);
    reconcile(ui.users, shown, {
      key: (user) => user.id,
      create: (user) => {
        const name = el("span", { class: "name" });
        const badge = el("span", { class: "badge" });
        const button = el("button", { type: "button", "data-user": user.id }, name, badge);
        button.addEventListener("click", () => this.openConversation(user.id));
        return el("li", {}, button);
      },
      update: (item, user) => {
        const button = item.firstChild;
        const [name, badge] = button.children;
        setText(name, user.id === this.me.id ? `${user.username} (you)` : user.username);
        const unread = this.peers.get(user.id)?.unread ?? 0;
        setText(badge, unread ? String(unread) : "");
        badge.hidden = !unread;
        button.setAttribute("aria-label", unread ? `${user.username}, ${unread} unread` : user.username);
        if (this.open?.peer === user.id) button.setAttribute("aria-current", "true");
        else button.removeAttribute("aria-current");
      },
    });
    let note = "";
    if (matching.length > shown.length) note = `${shown.length} of ${matching.length} shown: type to narrow.`;
    else if (query && !matching.length) note = `No one is called “${ui.search.value.trim()}”.`;
    setText(ui.usersNote, note);
    const unread = [...this.peers.values()].reduce((sum, peer) => sum + peer.unread, 0);
    document.title = unread ? `(${unread}) anonchat` : "anonchat";
  }

  // Writes a message: queued in the view at once, sent with a key of its own (so that a
  // retry after a lost answer or a 503 never makes a second message).
  write(content) {
    const peerId = this.open.peer;
    const send = { key: randomKey(), content, receiverId: peerId, id: null, state: "sending" };
    if (!this.pending.has(peerId)) this.pending.set(peerId, []);
    this.pending.get(peerId).push(send);
    renderConversation(this, { bottom: true });
    this.deliver(send);
  }

  async deliver(send) {
    send.state = "sending";
    send.reason = "";
    for (let attempt = 1; chat === this; attempt += 1) {
      try {
        const { body } = await api.send(send.receiverId, send.content, send.key);
        send.id = body.id;
        send.createdAt = body.created_at;
        send.state = "queued";
        if (this.storedEarly.delete(body.id)) this.dropPending(send.receiverId, body.id);
        break;
      } catch (error) {
        if (chat !== this || error.code === "session_ended") return;
        if (!error.transient) {
          send.state = "failed";
          send.reason = error.message;
          send.retryable = error.status === 429;
          break;
        }
        send.reason = navigator.onLine ? "Not sent yet: trying again…" : "Offline: it goes when the network is back.";
        this.renderIfOpen(send.receiverId);
        const backoff = Math.min(MAX_RETRY_MS, 1000 * 2 ** (attempt - 1));
        await pause(error.retryAfter !== null ? error.retryAfter * 1000 : backoff);
      }
    }
    this.renderIfOpen(send.receiverId);
  }

  renderIfOpen(peerId) {
    if (this.open?.peer === peerId) renderConversation(this);
  }
}

// The open conversation's stored messages, by id and in cursor order.
class Conversation {
  constructor(peer) {
    this.peer = peer;
    this.byId = new Map();
    this.order = [];
    this.shown = 0;
    this.loaded = false;
    this.problem = "";
  }

  add(message) {
    if (this.byId.has(message.id)) return;
    this.byId.set(message.id, message);
    const order = this.order;
    let at = order.length;
    while (at > 0 && order[at - 1].cursor > message.cursor) at -= 1;
    order.splice(at, 0, message);
    // A message arriving while the view is open joins what is shown, never pushes out
    // what one is reading.
    if (this.loaded) this.shown += 1;
  }
}

// Resolves after `ms`, or at once when the network comes back.
function pause(ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      removeEventListener("online", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    addEventListener("online", done);
  });
}

const STATES = {
  sending: "Sending…",
  queued: "Queued",
  stored: "Stored",
  failed: "Failed",
};

function renderConversation(state, { bottom = false } = {}) {
  const conversation = state.open;
  const log = ui.log;
  const fromBottom = log.scrollHeight - log.scrollTop - log.clientHeight;
  let items = [];
  let note = "";
  if (conversation) {
    const stored = conversation.order.slice(conversation.order.length - conversation.shown);
    const sends = (state.pending.get(conversation.peer) ?? []).map((send) => ({ send }));
    items = [...stored.map((message) => ({ message })), ...sends];
    if (conversation.problem) note = conversation.problem;
    else if (!conversation.loaded) note = "Loading the conversation…";
    else if (!items.length) note = `No messages with ${state.nameOf(conversation.peer)} yet: say hello.`;
    ui.older.hidden = conversation.shown >= conversation.order.length;
  } else {
    ui.older.hidden = true;
  }
  setText(ui.logNote, note);
  ui.logNote.hidden = !note;
  // While the history comes in, the log is not read out message by message.
  ui.log.setAttribute("aria-busy", String(Boolean(conversation && !conversation.loaded)));
  reconcile(ui.messages, items, {
    key: ({ message, send }) => (message ? `m${message.id}` : send.id ? `m${send.id}` : `k${send.key}`),
    create: () => {
      const item = el(
        "li",
        {},
        el("span", { class: "visually-hidden" }),
        el("p", { class: "text" }),
        el("p", { class: "meta" }, el("time"), el("span", { class: "state" })),
      );
      return item;
    },
    update: (item, { message, send }) => {
      const senderId = message ? message.sender_id : state.me.id;
      const mine = senderId === state.me.id;
      const status = message ? "stored" : send.state;
      item.className = `message ${mine ? "mine" : "theirs"} ${status}`;
      const [who, text, meta] = item.children;
      setText(who, mine ? "You:" : `${state.nameOf(senderId)}:`);
      setText(text, message ? message.content : send.content);
      const [time, label] = meta.children;
      const created = message ? message.created_at : send.createdAt;
      setText(time, created ? when(created) : "");
      if (created) time.setAttribute("datetime", created);
      let words = mine ? STATES[status] : "";
      if (send?.reason) words = send.state === "failed" ? `Failed: ${send.reason}` : send.reason;
      setText(label, words);
      let retry = item.querySelector("button");
      if (send?.state === "failed" && send.retryable) {
        if (!retry) {
          retry = el("button", { type: "button", class: "retry" }, "Try again");
          retry.addEventListener("click", () => chat?.deliver(send));
          item.append(retry);
        }
      } else {
        retry?.remove();
      }
    },
  });
  if (bottom || fromBottom < 48) log.scrollTop = log.scrollHeight;
}

function showOlder() {
  const conversation = chat?.open;
  if (!conversation || conversation.shown >= conversation.order.length) return;
  const fromBottom = ui.log.scrollHeight - ui.log.scrollTop;
  conversation.shown = Math.min(conversation.order.length, conversation.shown + SHOWN);
  const hadFocus = document.activeElement === ui.older;
  renderConversation(chat);
  ui.log.scrollTop = ui.log.scrollHeight - fromBottom;
  // The button goes once everything shows: focus stays in the log, not lost to the page.
  if (hadFocus && ui.older.hidden) ui.log.focus();
}

const CONNECTION = {
  connecting: () => "Connecting…",
  live: () => "",
  reconnecting: (seconds) => `Connection lost: reconnecting in ${seconds} s…`,
  offline: () => "Offline: reconnecting when the network is back…",
};

function showConnection(state, detail) {
  setText(ui.connection, CONNECTION[state](detail));
  ui.connection.dataset.state = state;
}

// The user id a token names (its `sub` claim); the gateway checks the token, the page
// only reads it.
function userIdOf(token) {
  const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return Number(JSON.parse(atob(payload)).sub);
}

function showSignin(message = "") {
  ui.chatView.hidden = true;
  ui.account.hidden = true;
  ui.signinView.hidden = false;
  setText(ui.connection, "");
  setText(ui.signinError, message);
  ui.password.value = "";
  ui.username.focus();
}

async function showChat(session) {
  ui.signinView.hidden = true;
  ui.chatView.hidden = false;
  ui.account.hidden = false;
  ui.search.value = "";
  setText(ui.me, session.me.name);
  chat = new Chat(session);
  await chat.start();
}

function leave(message = "") {
  chat?.stop();
  chat = null;
  // Nothing of the session stays in the page: names and messages go with it.
  reconcile(ui.users, [], { key: () => 0, create: () => null, update: () => {} });
  reconcile(ui.messages, [], { key: () => 0, create: () => null, update: () => {} });
  ui.chatView.classList.remove("open");
  setText(ui.usersNote, "");
  setText(ui.peer, "Pick someone to talk to");
  document.title = "anonchat";
  showSignin(message);
}

ui.signin.addEventListener("submit", async (event) => {
  event.preventDefault();
  const action = event.submitter?.value ?? "login";
  const username = ui.username.value.trim();
  const password = ui.password.value;
  if (!username || !password) {
    setText(ui.signinError, "Enter a name and a password.");
    return;
  }
  const buttons = ui.signin.querySelectorAll("button");
  for (const button of buttons) button.disabled = true;
  setText(ui.signinError, "");
  try {
    if (action === "register") await api.register(username, password);
    const session = await api.login(username, password);
    session.me = { id: userIdOf(session.token), name: username };
    api.save();
    ui.password.value = "";
    await showChat(session);
  } catch (error) {
    api.forget();
    setText(ui.signinError, error.message);
    ui.password.focus();
  } finally {
    for (const button of buttons) button.disabled = false;
  }
});

ui.logout.addEventListener("click", async () => {
  const ending = api.logout();
  leave();
  await ending;
});

api.onSessionEnd = () => {
  api.forget();
  leave("Your session has ended: please log in again.");
};

let searchTimer = null;
ui.search.addEventListener("input", () => {
  chat?.renderUsers();
  // Someone who registered since the list was read is found too.
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => chat?.refreshUsers(), 300);
});

ui.back.addEventListener("click", () => chat?.closeConversation());
ui.older.addEventListener("click", showOlder);
ui.log.addEventListener("scroll", () => {
  if (ui.log.scrollTop < 40) showOlder();
});

ui.text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const content = ui.text.value;
  if (!chat?.open || !content.trim()) return;
  ui.text.value = "";
  chat.write(content);
});

if (api.session?.me) showChat(api.session);
else showSignin();
