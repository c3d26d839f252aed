// Small DOM helpers. Text from the server (names, messages) only ever becomes text
// nodes: nothing here parses HTML, and the page's Content-Security-Policy makes the
// browser refuse it (Trusted Types) if anything tried.

// An element with attributes (`class`, `hidden`, any other) and children (nodes or text).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children);
  return node;
}

const keyed = new WeakMap();

// Makes `list`'s children the nodes of `items`, in order, reusing the node each key had
// (so that focus, selection and scroll position survive an update).
export function reconcile(list, items, { key, create, update }) {
  const nodes = keyed.get(list) ?? new Map();
  const next = new Map();
  let cursor = list.firstChild;
  for (const item of items) {
    const id = key(item);
    let node = nodes.get(id);
    if (node === undefined) node = create(item);
    update(node, item);
    next.set(id, node);
    if (node === cursor) cursor = cursor.nextSibling;
    else list.insertBefore(node, cursor);
  }
  while (cursor) {
    const after = cursor.nextSibling;
    cursor.remove();
    cursor = after;
  }
  keyed.set(list, next);
}

// Sets a node's text only when it changed (no needless reflow, no lost selection).
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

// "14:05" today, "1 Dec 2026, 14:05" on any other day.
export function when(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const today = new Date().toDateString() === date.toDateString();
  return today ? TIME.format(date) : DATE_TIME.format(date);
}
