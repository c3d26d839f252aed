// The chat page: sign in, the people, one open conversation, the composer, settings.
//
// What the page knows comes from the API: GET /get_users (names), GET /conversations
// (who one talks to, what is unread), GET /blocks and GET /me (whom one blocks, read
// receipts), GET /get_messages (the open conversation, its newest page first, older ones
// as one scrolls up) and the event stream from the latest cursor on (messages, deletions,
// read receipts, live).

import { Api, loadSession, randomKey } from "./api.js";
import { EventStream } from "./stream.js";
import { el, reconcile, setText, when } from "./view.js";

// Messages read at a time: the newest page on opening, an older one at each scroll up.
const PAGE = 50;
// The people list shows at most this many names; the search box narrows it.
const LISTED = 100;
const MAX_RETRY_MS = 30_000;
// How a partner whose account was erased is named.
const GONE = "deleted account";

const $ = (id) => document.getElementById(id);
const ui = {
  connection: $("connection"),
  account: $("account"),
  me: $("me"),
  openSettings: $("open-settings"),
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
  block: $("block"),
  peerNote: $("peer-note"),
  conversationError: $("conversation-error"),
  log: $("log"),
  older: $("older"),
  logNote: $("log-note"),
  messages: $("messages"),
  composer: $("composer"),
  text: $("text"),
  send: $("send"),
  settings: $("settings"),
  receipts: $("receipts"),
  blocked: $("blocked"),
  blockedNote: $("blocked-note"),
  erase: $("erase"),
  erasePassword: $("erase-password"),
  settingsError: $("settings-error"),
  closeSettings: $("close-settings"),
  confirm: $("confirm"),
  confirmText: $("confirm-text"),
  confirmYes: $("confirm-yes"),
  confirmNo: $("confirm-no"),
};

const api = new Api(loadSession());
let chat = null;

// Everything the page holds for one signed-in session; dropped whole at logout.
class Chat {
  constructor(session) {
    this.session = session;
    this.me = session.me;
    this.users = new Map();
    this.lastUserId = 0;
    // Partners whose account was erased (404 on /users/{id}).
    this.gone = new Set();
    this.lookingUp = new Set();
    // Per person talked to: the last cursor, unread, the unread that came live (id to
    // cursor), how far the page marked it read, how far they read one's own messages.
    this.peers = new Map();
    this.blocked = new Set();
    this.readReceipts = false;
    // Sends not yet seen stored, per receiver, in the order they were written.
    this.pending = new Map();
    // Own messages the stream showed stored before their 202 was read.
    this.storedEarly = new Set();
    // Messages deleted while the page is open: a page of history read before the
    // deletion, and answered after it, does not bring them back.
    this.deleted = new Set();
    this.syncing = null;
    this.syncAgain = false;
    this.open = null;
    this.usersLoading = null;
    this.renders = null;
    this.stream = new EventStream(api, {
      onEvent: (event) => this.onEvent(event),
      onState: (state, detail) => showConnection(state, detail),
    });
  }

  async start() {
    const [conversations] = await Promise.all([
      api.conversations().catch((error) => {
        setText(ui.usersNote, error.message);
        return [];
      }),
      this.refreshUsers(),
      this.loadBlocks(),
      this.loadSettings(),
    ]);
    if (chat !== this) return;
    // The stream starts after the latest cursor the counts include: what it brings is new.
    let latest = 0;
    for (const { user_id: userId, last_cursor: last, unread } of conversations) {
      const peer = this.peer(userId);
      peer.last = last;
      peer.unread = unread;
      latest = Math.max(latest, last);
      if (!this.users.has(userId)) this.lookUp(userId);
    }
    if (latest) this.stream.lastId = String(latest);
    this.stream.start();
    this.renderUsers();
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
        this.renderHead();
      })
      .catch((error) => setText(ui.usersNote, error.message))
      .finally(() => {
        this.usersLoading = null;
      });
    return this.usersLoading;
  }

  // Whether someone's account is still there (and their name): one look per person at a
  // time.
  async lookUp(id) {
    if (this.lookingUp.has(id) || this.gone.has(id)) return;
    this.lookingUp.add(id);
    try {
      const user = await api.user(id);
      if (chat !== this) return;
      if (user) {
        this.users.set(id, user);
      } else {
        this.users.delete(id);
        this.gone.add(id);
      }
      this.renderUsers();
      if (this.open?.peer === id) {
        this.renderHead();
        renderConversation(this);
      }
    } catch {
      // Unreachable for now: the name waits for the next look.
    } finally {
      this.lookingUp.delete(id);
    }
  }

  async loadBlocks() {
    try {
      const blocks = await api.blocks();
      if (chat !== this) return;
      this.blocked = new Set(blocks.map((block) => block.user_id));
      for (const id of this.blocked) if (!this.users.has(id)) this.lookUp(id);
    } catch (error) {
      setText(ui.settingsError, error.message);
    }
    this.renderBlocked();
    this.renderHead();
  }

  async loadSettings() {
    try {
      const me = await api.me();
      if (chat !== this) return;
      this.readReceipts = me.read_receipts;
    } catch (error) {
      setText(ui.settingsError, error.message);
    }
    ui.receipts.checked = this.readReceipts;
  }

  nameOf(id) {
    if (this.gone.has(id)) return GONE;
    return this.users.get(id)?.username ?? `user ${id}`;
  }

  peer(id) {
    let peer = this.peers.get(id);
    if (!peer) {
      peer = { last: 0, unread: 0, live: new Map(), marked: 0, theyRead: 0 };
      this.peers.set(id, peer);
    }
    return peer;
  }

  onEvent({ event, data }) {
    if (event === "message") this.onMessage(data);
    else if (event === "failed") this.onFailed(data);
    else if (event === "deleted") this.onDeleted(data);
    else if (event === "read") this.onRead(data);
  }

  onMessage(message) {
    if (this.deleted.has(message.id)) return;
    const mine = message.sender_id === this.me.id;
    const peerId = mine ? message.receiver_id : message.sender_id;
    const peer = this.peer(peerId);
    const fresh = message.cursor > peer.last;
    peer.last = Math.max(peer.last, message.cursor);
    const open = this.open?.peer === peerId;
    if (mine) {
      if (!this.dropPending(peerId, message.id)) this.rememberStored(message.id);
    } else if (!open && fresh) {
      peer.live.set(message.id, message.cursor);
      peer.unread += 1;
    }
    if (!this.users.has(peerId)) this.lookUp(peerId);
    if (open) {
      this.open.add(message);
      this.markRead(peerId);
    }
    this.render({ conversation: open });
  }

  // A message its sender took back: gone from the view, the pending sends and the counts.
  onDeleted({ id, sender_id: senderId, receiver_id: receiverId }) {
    this.forgetMessage(id, senderId === this.me.id ? receiverId : senderId);
    if (senderId === this.me.id) return;
    const peer = this.peers.get(senderId);
    if (peer?.live.delete(id)) peer.unread = Math.max(0, peer.unread - 1);
    else if (peer?.unread) this.syncUnread();
    // An erased account's messages go this way: is the account still there?
    this.lookUp(senderId);
  }

  forgetMessage(id, peerId) {
    this.deleted.add(id);
    if (this.deleted.size > 10_000) this.deleted.delete(this.deleted.values().next().value);
    this.dropPending(peerId, id);
    const open = this.open?.peer === peerId;
    if (open) this.open.remove(id);
    this.render({ conversation: open });
  }

  // They read one's messages to them up to a cursor (both sides send receipts).
  onRead({ reader_id: readerId, up_to: upTo }) {
    const peer = this.peer(readerId);
    peer.theyRead = Math.max(peer.theyRead, upTo);
    this.renderIfOpen(readerId);
  }

  // The unread counts as the server has them, after a message counted before the page
  // loaded was deleted; what came live since that answer was read is added to them.
  syncUnread() {
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = api
      .conversations()
      .then((conversations) => {
        if (chat !== this) return;
        const listed = new Map(conversations.map((c) => [c.user_id, c]));
        for (const [id, peer] of this.peers) {
          const counted = listed.get(id);
          if (this.open?.peer === id || (!counted && conversations.length >= 1000)) continue;
          for (const [message, cursor] of peer.live) {
            if (counted && cursor <= counted.last_cursor) peer.live.delete(message);
          }
          peer.unread = (counted?.unread ?? 0) + peer.live.size;
        }
        this.render();
      })
      .catch(() => {
        // Unreachable for now: the counts stay as they are until the next deletion.
      })
      .finally(() => {
        this.syncing = null;
        if (this.syncAgain) {
          this.syncAgain = false;
          this.syncUnread();
        }
      });
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

  // The open conversation is read up to its last cursor: no longer unread here, and the
  // server told (its unread counts, and the sender's receipt when both send them).
  markRead(peerId) {
    const peer = this.peer(peerId);
    peer.unread = 0;
    peer.live.clear();
    const upTo = peer.last;
    if (upTo <= peer.marked) return;
    peer.marked = upTo;
    api.markRead(peerId, upTo).catch(() => {
      if (peer.marked === upTo) peer.marked = 0;
    });
  }

  async openConversation(peerId, { focus = true } = {}) {
    const conversation = new Conversation(peerId);
    this.open = conversation;
    this.session.open = peerId;
    api.save();
    ui.chatView.classList.add("open");
    setText(ui.conversationError, "");
    this.renderHead();
    this.markRead(peerId);
    renderConversation(this, { bottom: true });
    this.renderUsers();
    if (focus) ui.text.focus();
    this.lookUp(peerId);
    try {
      const page = await api.historyPage(peerId, PAGE);
      if (this.open !== conversation) return;
      this.addPage(conversation, page);
      conversation.loaded = true;
    } catch (error) {
      conversation.problem = error.message;
    }
    if (this.open === conversation) {
      this.markRead(peerId);
      renderConversation(this, { bottom: true });
    }
  }

  addPage(conversation, { messages, older }) {
    const peer = this.peer(conversation.peer);
    for (const message of messages) {
      if (this.deleted.has(message.id)) continue;
      conversation.add(message);
      peer.last = Math.max(peer.last, message.cursor);
    }
    conversation.older = older;
  }

  // The page of history before the oldest shown, kept where one was reading.
  async loadOlder() {
    const conversation = this.open;
    if (!conversation?.older || conversation.loading) return;
    conversation.loading = true;
    try {
      const page = await api.historyPage(conversation.peer, PAGE, conversation.older);
      if (this.open !== conversation) return;
      const fromBottom = ui.log.scrollHeight - ui.log.scrollTop;
      const hadFocus = document.activeElement === ui.older;
      this.addPage(conversation, page);
      renderConversation(this);
      ui.log.scrollTop = ui.log.scrollHeight - fromBottom;
      // The button goes once everything shows: focus stays in the log, not lost to the page.
      if (hadFocus && ui.older.hidden) ui.log.focus();
    } catch (error) {
      setText(ui.conversationError, error.message);
    } finally {
      conversation.loading = false;
    }
  }

  closeConversation() {
    const peerId = this.open?.peer;
    this.open = null;
    this.session.open = null;
    api.save();
    ui.chatView.classList.remove("open");
    setText(ui.conversationError, "");
    this.renderHead();
    renderConversation(this);
    this.renderUsers();
    ui.users.querySelector(`[data-user="${peerId}"]`)?.focus();
  }

  // The conversation's header: whom it is with, blocking them, what that means.
  renderHead() {
    const peerId = this.open?.peer ?? null;
    const gone = peerId !== null && this.gone.has(peerId);
    const blocked = peerId !== null && this.blocked.has(peerId);
    setText(ui.peer, peerId === null ? "Pick someone to talk to" : this.nameOf(peerId));
    ui.block.hidden = peerId === null || peerId === this.me.id || gone;
    setText(ui.block, blocked ? "Unblock" : "Block");
    let note = "";
    if (gone) note = "This account was deleted: nothing more can be sent to it.";
    else if (blocked) note = `You block ${this.nameOf(peerId)}: what they send does not reach you.`;
    setText(ui.peerNote, note);
    ui.peerNote.hidden = !note;
    const closed = peerId === null || gone;
    ui.text.disabled = closed;
    ui.send.disabled = closed;
    ui.text.placeholder = closed ? "Write a message" : `Write to ${this.nameOf(peerId)}`;
  }

  async setBlocked(peerId, blocked) {
    await api.block(peerId, blocked);
    if (chat !== this) return;
    if (blocked) this.blocked.add(peerId);
    else this.blocked.delete(peerId);
    this.renderHead();
    this.renderUsers();
    this.renderBlocked();
  }

  async toggleBlock() {
    const peerId = this.open?.peer;
    if (peerId === undefined) return;
    setText(ui.conversationError, "");
    ui.block.disabled = true;
    try {
      await this.setBlocked(peerId, !this.blocked.has(peerId));
    } catch (error) {
      setText(ui.conversationError, error.message);
    } finally {
      ui.block.disabled = false;
    }
  }

  // Whom one blocks, in settings, each with a button to unblock them.
  renderBlocked() {
    const ids = [...this.blocked];
    reconcile(ui.blocked, ids, {
      key: (id) => id,
      create: (id) => {
        const button = el("button", { type: "button", class: "secondary", "data-unblock": id }, "Unblock");
        return el("li", {}, el("span", { class: "name" }), button);
      },
      update: (item, id) => {
        const [name, button] = item.children;
        setText(name, this.nameOf(id));
        button.setAttribute("aria-label", `Unblock ${this.nameOf(id)}`);
      },
    });
    ui.blockedNote.hidden = ids.length > 0;
  }

  async unblockFromSettings(id) {
    setText(ui.settingsError, "");
    const buttons = [...ui.blocked.querySelectorAll("button")];
    const next = buttons[buttons.findIndex((b) => b.dataset.unblock === String(id)) + 1];
    try {
      await this.setBlocked(id, false);
      (next ?? ui.closeSettings).focus();
    } catch (error) {
      setText(ui.settingsError, error.message);
    }
  }

  async setReadReceipts(on) {
    setText(ui.settingsError, "");
    try {
      const me = await api.setReadReceipts(on);
      this.readReceipts = me.read_receipts;
    } catch (error) {
      setText(ui.settingsError, error.message);
    }
    ui.receipts.checked = this.readReceipts;
  }

  // Takes one's own message back, for both sides, once one has said so.
  async deleteOwn(id, peerId) {
    if (!(await confirmed("Delete this message for both of you?", "Delete"))) return;
    setText(ui.conversationError, "");
    try {
      await api.deleteMessage(id);
    } catch (error) {
      // A 404: it is gone already (deleted from another device).
      if (error.status !== 404) {
        setText(ui.conversationError, error.message);
        return;
      }
    }
    this.forgetMessage(id, peerId);
    ui.log.focus();
  }

  // The people list: those talked to most recently first, then everyone else by id.
  renderUsers() {
    const query = ui.search.value.trim().toLowerCase();
    const gone = [...this.gone].filter((id) => this.peers.has(id)).map((id) => ({ id, username: GONE }));
    const matching = [...this.users.values(), ...gone].filter(
      (user) => !query || user.username.toLowerCase().includes(query),
    );
    const last = (user) => this.peers.get(user.id)?.last ?? 0;
    matching.sort((a, b) => last(b) - last(a) || a.id - b.id);
    const shown = matching.slice(0, LISTED);
    reconcile(ui.users, shown, {
      key: (user) => user.id,
      create: (user) => {
        const name = el("span", { class: "name" });
        const tag = el("span", { class: "tag" }, "blocked");
        const badge = el("span", { class: "badge" });
        const button = el("button", { type: "button", "data-user": user.id }, name, tag, badge);
        button.addEventListener("click", () => this.openConversation(user.id));
        return el("li", {}, button);
      },
      update: (item, user) => {
        const button = item.firstChild;
        const [name, tag, badge] = button.children;
        setText(name, user.id === this.me.id ? `${user.username} (you)` : user.username);
        const blocked = this.blocked.has(user.id);
        tag.hidden = !blocked;
        const unread = this.peers.get(user.id)?.unread ?? 0;
        setText(badge, unread ? String(unread) : "");
        badge.hidden = !unread;
        const label = [user.username, unread ? `${unread} unread` : "", blocked ? "blocked" : ""];
        button.setAttribute("aria-label", label.filter(Boolean).join(", "));
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
        if (this.storedEarly.delete(body.id) || this.deleted.has(body.id)) {
          this.dropPending(send.receiverId, body.id);
        }
        break;
      } catch (error) {
        if (chat !== this || error.code === "session_ended") return;
        if (!error.transient) {
          send.state = "failed";
          send.reason = error.message;
          send.retryable = error.status === 429;
          if (error.status === 404) this.lookUp(send.receiverId);
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

// The open conversation's stored messages, by id and in cursor order, and the path of
// the page of history before them (null once the first message is in).
class Conversation {
  constructor(peer) {
    this.peer = peer;
    this.byId = new Map();
    this.order = [];
    this.older = null;
    this.loading = false;
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
  }

  remove(id) {
    const message = this.byId.get(id);
    if (!message) return;
    this.byId.delete(id);
    this.order.splice(this.order.indexOf(message), 1);
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
  read: "Read",
  failed: "Failed",
};

// A stored message and the send that became it share one key (and so one node).
function itemKey({ message, send }) {
  if (message) return `m${message.id}`;
  return send.id ? `m${send.id}` : `k${send.key}`;
}

function renderConversation(state, { bottom = false } = {}) {
  const conversation = state.open;
  const log = ui.log;
  const fromBottom = log.scrollHeight - log.scrollTop - log.clientHeight;
  let items = [];
  let note = "";
  let theyRead = 0;
  if (conversation) {
    const sends = (state.pending.get(conversation.peer) ?? []).map((send) => ({ send }));
    items = [...conversation.order.map((message) => ({ message })), ...sends];
    if (conversation.problem) note = conversation.problem;
    else if (!conversation.loaded) note = "Loading the conversation…";
    else if (!items.length) note = `No messages with ${state.nameOf(conversation.peer)} yet: say hello.`;
    ui.older.hidden = !conversation.older;
    theyRead = state.peers.get(conversation.peer)?.theyRead ?? 0;
  } else {
    ui.older.hidden = true;
  }
  setText(ui.logNote, note);
  ui.logNote.hidden = !note;
  // While the history comes in, the log is not read out message by message.
  ui.log.setAttribute("aria-busy", String(Boolean(conversation && !conversation.loaded)));
  reconcile(ui.messages, items, {
    key: itemKey,
    create: (item) =>
      el(
        "li",
        {},
        el("span", { class: "visually-hidden" }),
        el("p", { class: "text", id: `text-${itemKey(item)}` }),
        el("p", { class: "meta" }, el("time"), el("span", { class: "state" })),
      ),
    update: (item, { message, send }) => {
      const senderId = message ? message.sender_id : state.me.id;
      const mine = senderId === state.me.id;
      let status = message ? "stored" : send.state;
      if (message && mine && (message.read_at || message.cursor <= theyRead)) status = "read";
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
      // One's own message, once it has an id, can be taken back.
      const id = message ? message.id : send.id;
      let remove = meta.querySelector("button.delete");
      if (mine && id !== null && status !== "failed") {
        if (!remove) {
          remove = el("button", { type: "button", class: "delete", "aria-describedby": text.id }, "Delete");
          meta.append(remove);
        }
        remove.dataset.id = id;
        remove.dataset.peer = conversation.peer;
      } else {
        remove?.remove();
      }
      let retry = item.querySelector("button.retry");
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

// Asks in a modal dialog; true when the person chose `yes` (Escape and Cancel say no).
function confirmed(question, yes) {
  const before = document.activeElement;
  setText(ui.confirmText, question);
  setText(ui.confirmYes, yes);
  ui.confirm.returnValue = "";
  ui.confirm.showModal();
  ui.confirmNo.focus();
  return new Promise((resolve) => {
    ui.confirm.addEventListener(
      "close",
      () => {
        if (before?.isConnected) before.focus();
        resolve(ui.confirm.returnValue === "yes");
      },
      { once: true },
    );
  });
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
  // Nothing of the session stays in the page: names, messages, settings go with it.
  for (const list of [ui.users, ui.messages, ui.blocked]) {
    reconcile(list, [], { key: () => 0, create: () => null, update: () => {} });
  }
  for (const dialog of [ui.confirm, ui.settings]) if (dialog.open) dialog.close();
  ui.chatView.classList.remove("open");
  ui.receipts.checked = false;
  ui.erasePassword.value = "";
  ui.block.hidden = true;
  ui.peerNote.hidden = true;
  for (const node of [ui.usersNote, ui.conversationError, ui.settingsError, ui.peerNote]) setText(node, "");
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
  // A renewal still on its way when the page left the session (logged out, account
  // deleted) says nothing more.
  if (!chat) return;
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
ui.block.addEventListener("click", () => chat?.toggleBlock());
ui.older.addEventListener("click", () => chat?.loadOlder());
ui.log.addEventListener("scroll", () => {
  if (ui.log.scrollTop < 40) chat?.loadOlder();
});
ui.messages.addEventListener("click", (event) => {
  const remove = event.target.closest("button.delete");
  if (remove) chat?.deleteOwn(Number(remove.dataset.id), Number(remove.dataset.peer));
});

ui.openSettings.addEventListener("click", () => {
  setText(ui.settingsError, "");
  ui.settings.showModal();
  chat?.loadBlocks();
});
ui.closeSettings.addEventListener("click", () => ui.settings.close());
ui.receipts.addEventListener("change", () => chat?.setReadReceipts(ui.receipts.checked));
ui.blocked.addEventListener("click", (event) => {
  const unblock = event.target.closest("button[data-unblock]");
  if (unblock) chat?.unblockFromSettings(Number(unblock.dataset.unblock));
});
ui.confirmYes.addEventListener("click", () => ui.confirm.close("yes"));
ui.confirmNo.addEventListener("click", () => ui.confirm.close(""));

ui.erase.addEventListener("submit", async (event) => {
  event.preventDefault();
  setText(ui.settingsError, "");
  const password = ui.erasePassword.value;
  if (!password) {
    setText(ui.settingsError, "Enter your password to delete the account.");
    ui.erasePassword.focus();
    return;
  }
  const question = "Delete your account for good? Every message you sent goes, for both sides.";
  if (!(await confirmed(question, "Delete account"))) return;
  try {
    await api.erase(password);
  } catch (error) {
    setText(ui.settingsError, error.message);
    ui.erasePassword.focus();
    return;
  }
  leave("Your account is deleted.");
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
