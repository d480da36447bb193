// @ts-check
// Building the pages' DOM from data. Every piece of text goes in through textContent (or an attribute set
// as a property), never as HTML: a name like `<img src=x onerror=...>` stays text.

/** el("div", {class: "tile", text: name, title, data: {id}, on: {click: fn}, attrs: {role: "list"}}, ...kids) */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { class: cls, text, data, on, attrs, ...rest } = props;
  if (cls) node.className = cls;
  if (text != null) node.textContent = String(text);
  if (data) for (const [k, v] of Object.entries(data)) node.dataset[k] = String(v);
  if (on) for (const [k, v] of Object.entries(on)) node.addEventListener(k, v);
  if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) node[k] = v;
  for (const child of children) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Set text only when it changed (cheap updates under a stream of statuses). */
export function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

export function setState(node, value) {
  if (node.dataset.state !== value) node.dataset.state = value;
}

const STATE_WORDS = {
  idle: "Not connected",
  connecting: "Connecting…",
  online: "Connected",
  reconnecting: "Reconnecting…",
  stopped: "Disconnected",
};

/** Show a HubClient's connection state in `node` (and a reason line in `detail`). */
export function showConnection(hub, node, detail) {
  hub.on("state", ({ state, reason, retryInMs }) => {
    setState(node, state);
    setText(node, STATE_WORDS[state] || state);
    if (!detail) return;
    let line = "";
    if (state === "reconnecting") {
      const wait = retryInMs != null ? ` Retrying in ${Math.max(1, Math.ceil(retryInMs / 1000))} s.` : "";
      line = `${reason || "Connection lost"}.${wait}`;
    } else if (state === "stopped") line = reason;
    setText(detail, line);
  });
}

export function time(ms) {
  if (ms == null) return "";
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A polite live region: screen readers hear it, nothing blocks. */
export function announce(region, text) {
  region.prepend(el("li", { text: `${time(Date.now())} ${text}` }));
  while (region.children.length > 20) region.lastElementChild.remove();
}
