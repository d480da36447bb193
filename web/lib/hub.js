// @ts-check
// One client of the hub's wire contract (docs/protocol.md) for every page, and for Node's test runner.
//
//   const hub = new HubClient({ url, token });
//   hub.on("state", ({ state, reason, retryInMs }) => ...);   // idle, connecting, online, reconnecting, stopped
//   hub.on("candidate.status", (data, message) => ...);       // any server message type, or "*"
//   hub.start();
//
// It authenticates on every (re)connect (the hub then sends the whole current state: the page rebuilds
// from it), acks `room.assign` and `token.refresh` once the listeners applied them, pings to find a dead
// socket, answers `session.expiring` with `auth.refresh` when it can get a newer token, and reconnects with
// exponential backoff and full jitter as the close code says (policy below).

export const STOP_REASONS = {
  1000: "the hub closed the connection",
  1008: "this page's origin is not allowed to connect to the hub",
  1009: "a message was too big for the hub",
  4400: "the hub could not read a message from this page",
  4401: "the session is not valid (expired or refused): open a fresh link",
  4403: "this session may not do that",
};
const NOW_CODES = new Set([1012]);

/** What to do after a close: stop (and say why), reconnect at once (with jitter), or back off. */
export function closePolicy(code, reason = "") {
  if (code in STOP_REASONS) {
    const said = reason ? ` (${reason})` : "";
    return { action: "stop", reason: `${STOP_REASONS[code]}${said}` };
  }
  if (NOW_CODES.has(code)) return { action: "now", reason: "the hub is restarting" };
  if (code === 1013 || code === 4429) return { action: "backoff", reason: "the hub asked to slow down" };
  return { action: "backoff", reason: "the connection was lost" };
}

/** Full jitter: a uniform delay in [0, min(cap, base * 2^attempt)). */
export function backoffDelay(attempt, { baseMs = 500, capMs = 30000, random = Math.random } = {}) {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30)));
}

const ACKED = new Set(["room.assign", "token.refresh"]);
const now = () => globalThis.performance.now();

export class HubClient {
  /**
   * @param {object} options
   * @param {string} options.url ws(s)://host/ws
   * @param {string} options.token the session JWT
   * @param {() => Promise<string | null>} [options.refreshToken] a newer session JWT (or null), for
   *   session.expiring
   * @param {typeof WebSocket} [options.WebSocket] the WebSocket class (Node before 22, tests)
   * @param {number} [options.pingMs] how often to ping the hub
   * @param {number} [options.baseMs] the first backoff step
   * @param {number} [options.capMs] the largest backoff
   * @param {number} [options.nowJitterMs] the jitter of a reconnect at once (close 1012)
   * @param {() => number} [options.random] a uniform random number in [0, 1)
   */
  constructor({
    url,
    token,
    refreshToken = null,
    WebSocket = globalThis.WebSocket,
    pingMs = 15000,
    baseMs = 500,
    capMs = 30000,
    nowJitterMs = 500,
    random = Math.random,
  }) {
    this.url = url;
    this.token = token;
    this.refreshToken = refreshToken;
    this.WebSocket = WebSocket;
    this.pingMs = pingMs;
    this.backoff = { baseMs, capMs, random };
    this.nowJitterMs = nowJitterMs;
    this.state = "idle";
    this.reason = "";
    this.hello = null;
    this.attempt = 0;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = new Map();
    this.timers = { retry: null, ping: null };
    this.lastSeen = 0;
    this.closeCode = null;
  }

  /** Call `fn(data, message)` for each server message of `type` ("*": all; "state": state changes). */
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }

  emit(type, data, message) {
    const fns = this.listeners.get(type);
    if (fns) for (const fn of fns) fn(data, message);
  }

  setState(state, reason = "", retryInMs = null) {
    this.state = state;
    this.reason = reason;
    this.emit("state", { state, reason, retryInMs, closeCode: this.closeCode });
  }

  start() {
    if (this.ws || this.timers.retry) return;
    this.connect();
  }

  /** Close for good (Finish, page leaving). */
  stop(reason = "stopped by the page") {
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    this.setState("stopped", reason);
    if (ws) ws.close(1000);
    this.failPending(new Error(reason));
  }

  /** Drop the socket and reconnect with backoff, waiting at least `minDelayMs` (a page's policy, e.g. the
   * event is not set up on the hub yet: every connect is greeted, so the backoff alone would not grow). */
  reconnect(reason, minDelayMs = 0) {
    this.clearTimers();
    this.failPending(new Error(reason));
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
    this.scheduleRetry({ action: "backoff", reason }, minDelayMs);
  }

  connect() {
    this.timers.retry = null;
    this.setState(this.hello ? "reconnecting" : "connecting", this.reason);
    let ws;
    try {
      ws = new this.WebSocket(this.url, "proctorhub.v1.json");
    } catch (err) {
      this.scheduleRetry({ action: "backoff", reason: `cannot connect: ${err.message}` });
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.lastSeen = now();
      this.sendNow("auth", { token: this.token });
    };
    ws.onmessage = (event) => {
      if (this.ws === ws) this.receive(event.data);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.closeCode = event.code;
      this.clearTimers();
      this.failPending(new Error(`connection closed (${event.code})`));
      this.scheduleRetry(closePolicy(event.code, event.reason));
    };
    ws.onerror = () => {}; // a close event follows with the code
  }

  scheduleRetry(policy, minDelayMs = 0) {
    if (this.state === "stopped") return;
    if (policy.action === "stop") {
      this.setState("stopped", policy.reason);
      return;
    }
    let delay;
    if (policy.action === "now") {
      delay = Math.floor(this.backoff.random() * this.nowJitterMs);
      this.attempt = 0;
    } else {
      delay = backoffDelay(this.attempt, this.backoff);
      this.attempt += 1;
    }
    delay += minDelayMs;
    clearTimeout(this.timers.retry);
    this.timers.retry = setTimeout(() => this.connect(), delay);
    this.setState("reconnecting", policy.reason, delay);
  }

  receive(frame) {
    const rx = now();
    this.lastSeen = rx;
    let message;
    try {
      message = JSON.parse(frame);
    } catch {
      return;
    }
    message.rx = rx;
    const { type, data = {} } = message;
    if (type === "hello") {
      this.hello = data;
      this.attempt = 0;
      this.startPing();
      this.setState("online");
    }
    if (message.re != null && this.pending.has(message.re)) {
      const { resolve, reject, timer } = this.pending.get(message.re);
      this.pending.delete(message.re);
      clearTimeout(timer);
      if (type === "error") reject(Object.assign(new Error(data.message), { code: data.code }));
      else resolve(message);
    }
    this.emit(type, data, message);
    this.emit("*", data, message);
    if (ACKED.has(type) && typeof message.id === "number") this.send("ack", { id: message.id });
    if (type === "session.expiring") this.renewSession();
  }

  /** Send a message now if authenticated; the id, or null when offline (pages resend state on "online"). */
  send(type, data = {}) {
    if (this.state !== "online") return null;
    return this.sendNow(type, data);
  }

  sendNow(type, data) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return null;
    const id = this.nextId++;
    ws.send(JSON.stringify({ type, id, data }));
    return id;
  }

  /** Send and wait for the answer (`re`); rejects on `error` (with `.code`), close or timeout. */
  request(type, data = {}, timeoutMs = 10000) {
    const id = this.send(type, data);
    if (id == null) return Promise.reject(new Error("not connected to the hub"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer to ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  /** Use a newer session token: at once on this socket (auth.refresh), and on every later auth. */
  async refresh(token) {
    this.token = token;
    if (this.state !== "online") return null;
    return this.request("auth.refresh", { token });
  }

  async renewSession() {
    if (!this.refreshToken) return;
    try {
      const token = await this.refreshToken();
      if (token) await this.refresh(token);
    } catch (err) {
      this.emit("refresh.failed", { message: err.message });
    }
  }

  startPing() {
    clearInterval(this.timers.ping);
    this.timers.ping = setInterval(() => {
      if (now() - this.lastSeen > 2 * this.pingMs + 5000) {
        // No frame at all for two pings: the socket is dead even if the browser has not noticed.
        const ws = this.ws;
        this.ws = null;
        if (ws) ws.close(4000);
        this.clearTimers();
        this.scheduleRetry({ action: "backoff", reason: "the hub stopped answering" });
        return;
      }
      this.send("ping", {});
    }, this.pingMs);
  }

  clearTimers() {
    clearTimeout(this.timers.retry);
    clearInterval(this.timers.ping);
    this.timers.retry = null;
    this.timers.ping = null;
  }

  failPending(error) {
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(error);
    }
    this.pending.clear();
  }
}

/** The ws(s) URL of the hub that served this page. */
export function hubUrl(location = globalThis.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}
