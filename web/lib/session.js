// @ts-check
// Where a page's session token comes from, and the host page around an embedded one.
//
// The token is read from the URL fragment (`#token=<JWT>`: never sent to a server, so never in a log; then
// taken out of the address bar and kept in this tab's sessionStorage for a reload) or
// posted by a host page that embeds this one in an iframe: `{type: "proctorhub.token", token}`. Events for
// the host go back with `postMessage` to the host's origin only (the origin that sent the token, else the
// embedding page's origin from document.referrer).

import { HubClient, hubUrl } from "./hub.js";

export const fragment = () => new URLSearchParams(globalThis.location.hash.replace(/^#/, ""));

/** The claims of a JWT, for display only (the hub verifies it). */
export function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(part), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join(""),
    );
    return JSON.parse(json);
  } catch {
    return {};
  }
}

const embedded = () => window.parent !== window;

export class Host {
  constructor() {
    this.origin = null;
    this.tokenListeners = new Set();
    if (embedded() && document.referrer) {
      try {
        this.origin = new URL(document.referrer).origin;
      } catch {
        this.origin = null;
      }
    }
    globalThis.addEventListener("message", (event) => {
      if (event.source !== globalThis.parent || !event.data || event.data.type !== "proctorhub.token") return;
      if (typeof event.data.token !== "string") return;
      this.origin = event.origin;
      for (const fn of this.tokenListeners) fn(event.data.token);
    });
  }

  /** Tell the embedding page something (connected, warning, finished, session.expiring). */
  post(type, data = {}) {
    if (!embedded() || !this.origin) return;
    globalThis.parent.postMessage({ type: `proctorhub.${type}`, ...data }, this.origin);
  }

  onToken(fn) {
    this.tokenListeners.add(fn);
    return () => this.tokenListeners.delete(fn);
  }

  /** The next token the host posts, or null after `timeoutMs`. */
  nextToken(timeoutMs) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        off();
        resolve(null);
      }, timeoutMs);
      const off = this.onToken((token) => {
        clearTimeout(timer);
        off();
        resolve(token);
      });
    });
  }
}

const storageKey = () => `proctorhub.token:${globalThis.location.pathname}`;

/** This tab's copy of the page's token (a reload still works once the address bar no longer has it). */
function stored() {
  try {
    return globalThis.sessionStorage.getItem(storageKey());
  } catch {
    return null; // storage disabled: a reload needs a new link
  }
}

/** The fragment's token, taken out of the address bar once read: not left in the browser's history, in
 * a shared screen or a copied link. The other fragment parameters (event, candidate, bench) stay. */
function takeFragmentToken() {
  const params = fragment();
  const token = params.get("token");
  if (!token) return null;
  params.delete("token");
  const rest = params.toString();
  const { pathname, search } = globalThis.location;
  globalThis.history.replaceState(globalThis.history.state, "", `${pathname}${search}${rest ? `#${rest}` : ""}`);
  try {
    globalThis.sessionStorage.setItem(storageKey(), token);
  } catch {
    // storage disabled: the token lives in this page only
  }
  return token;
}

/** The session token: from the fragment at once (then cleared from it), else this tab's stored one,
 * else the first one the host page posts. */
export async function sessionToken(host) {
  const token = takeFragmentToken() || (embedded() ? null : stored());
  if (token) return token;
  if (embedded()) host.post("ready");
  return host.nextToken(24 * 3600 * 1000);
}

/** The page's HubClient: a newer token posted by the host is used at once, and `session.expiring` asks
 * the host for one (30 s) before the hub would close the socket. */
export function pageHub(host, token) {
  const hub = new HubClient({
    url: hubUrl(),
    token,
    refreshToken: () => {
      host.post("session.expiring");
      return host.nextToken(30000);
    },
  });
  host.onToken((fresh) => hub.refresh(fresh).catch(() => null));
  return hub;
}
