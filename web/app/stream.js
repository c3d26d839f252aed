// The event stream (GET /events), read with fetch so that the token goes in the
// Authorization header (EventSource cannot set headers; a token in the URL would end up
// in logs). It resumes after the last event id it saw whenever the stream ends or fails,
// so nothing is missed or seen twice.

import { ApiError } from "./api.js";

// The server sends a comment at least every 15 s: a stream silent for longer is dead.
const SILENCE_MS = 45_000;
const MAX_DELAY_MS = 15_000;

// Server-Sent Events out of chunks of text: call `push` with each chunk, get events.
export class EventParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.rest = "";
    this.fields = { id: null, event: "", data: [] };
    this.retry = null;
  }

  push(text) {
    const lines = (this.rest + text).split(/\r\n|\r|\n/);
    this.rest = lines.pop();
    for (const line of lines) this.line(line);
  }

  line(line) {
    const fields = this.fields;
    if (line === "") {
      if (fields.data.length > 0) {
        this.onEvent({ id: fields.id, event: fields.event || "message", data: fields.data.join("\n") });
      }
      this.fields = { id: null, event: "", data: [] };
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "id" && !value.includes("\0")) fields.id = value;
    else if (name === "event") fields.event = value;
    else if (name === "data") fields.data.push(value);
    else if (name === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

// Follows the caller's stream until `stop()`. `onEvent({id, event, data})` gets each
// event (data parsed); `onState(state, detail)` hears "connecting", "live",
// "reconnecting" (detail: seconds until the next try) and "offline".
export class EventStream {
  constructor(api, { onEvent, onState }) {
    this.api = api;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastId = null;
    this.baseDelay = 1000;
    this.stopped = false;
    this.live = false;
    this.controller = null;
    this.wake = null;
    this.onOffline = () => this.controller?.abort();
    this.onOnline = () => this.wake?.();
  }

  start() {
    addEventListener("offline", this.onOffline);
    addEventListener("online", this.onOnline);
    this.run();
  }

  stop() {
    this.stopped = true;
    removeEventListener("offline", this.onOffline);
    removeEventListener("online", this.onOnline);
    this.controller?.abort();
    this.wake?.();
  }

  async run() {
    let failures = 0;
    this.onState("connecting");
    while (!this.stopped) {
      let wait = null;
      this.live = false;
      try {
        if (await this.follow()) {
          await this.api.renew();
          failures = 0;
          continue;
        }
      } catch (error) {
        if (this.stopped || error.code === "session_ended") return;
        // A stream that was open starts the backoff again; failing to open one grows it.
        failures = this.live ? 1 : failures + 1;
        wait = error instanceof ApiError ? error.retryAfter : null;
      }
      if (this.stopped) return;
      // Backoff: 1 s, 2 s, 4 s... up to 15 s, a little random so that clients spread out.
      const backoff = Math.min(MAX_DELAY_MS, this.baseDelay * 2 ** Math.max(0, failures - 1));
      const delay = wait !== null ? wait * 1000 : backoff * (0.8 + Math.random() * 0.4);
      if (!navigator.onLine) {
        this.onState("offline");
        await this.sleep(Infinity);
      } else {
        this.onState("reconnecting", Math.ceil(delay / 1000));
        await this.sleep(delay);
      }
    }
  }

  // Resolves after `ms`, or at once when the network comes back or the stream stops.
  sleep(ms) {
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : null;
      const self = this;
      function done() {
        clearTimeout(timer);
        self.wake = null;
        resolve();
      }
      this.wake = done;
    });
  }

  // One connection, read to its end. True when the token needs renewing (the server
  // said so, or refused it).
  async follow() {
    const controller = new AbortController();
    this.controller = controller;
    let silence = setTimeout(() => controller.abort(), SILENCE_MS);
    const headers = this.api.authorization();
    if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
    let response;
    try {
      response = await fetch("/events", {
        headers,
        cache: "no-store",
        credentials: "omit",
        signal: controller.signal,
      });
    } catch {
      clearTimeout(silence);
      throw new ApiError("Cannot reach anonchat.");
    }
    if (response.status === 401) {
      clearTimeout(silence);
      return true;
    }
    if (!response.ok) {
      clearTimeout(silence);
      const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
      throw new ApiError("The stream was refused.", {
        status: response.status,
        retryAfter: Number.isFinite(retryAfter) ? retryAfter : null,
      });
    }
    this.live = true;
    this.onState("live");
    let reauthenticate = false;
    const parser = new EventParser((event) => {
      if (event.event === "reauthenticate") {
        reauthenticate = true;
        return;
      }
      if (event.id !== null) this.lastId = event.id;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onEvent({ id: event.id, event: event.event, data });
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        clearTimeout(silence);
        silence = setTimeout(() => controller.abort(), SILENCE_MS);
        parser.push(value);
        if (parser.retry !== null) this.baseDelay = parser.retry;
      }
    } catch {
      if (!reauthenticate) throw new ApiError("The stream was cut.");
    } finally {
      clearTimeout(silence);
      reader.releaseLock();
    }
    if (!reauthenticate && !this.stopped) throw new ApiError("The stream ended.");
    return reauthenticate;
  }
}
