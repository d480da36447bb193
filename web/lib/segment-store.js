// @ts-check
// Where the candidate page keeps its recorded segments (issue 14): one file per segment in the Origin
// Private File System, its metadata (backfill-plan.js SegmentMeta) in a small JSON file beside it, under
// `proctorhub-backfill/<event>/<candidate>/`. Where OPFS (or its `createWritable`, missing from some
// Safari versions on the main thread) is not there, IndexedDB holds the same records, the bytes as a Blob
// (not an ArrayBuffer: the advice for large binary values in IndexedDB) outside any index.
//
// Both survive a reload and a browser restart; `navigator.storage.persist()` asks the browser not to evict
// them under storage pressure (it may say no: the page then reports nothing different, it just may lose
// them, as any page may).

/** @typedef {import("./backfill-plan.js").SegmentMeta} SegmentMeta */

const ROOT = "proctorhub-backfill";
const name = (seq) => String(seq).padStart(8, "0");

/** Ask the browser to keep this origin's storage (granted silently or not by Chrome and Safari). */
export async function persist() {
  try {
    return Boolean(navigator.storage && navigator.storage.persist && (await navigator.storage.persist()));
  } catch {
    return false;
  }
}

/** The browser's quota and usage of this origin, or nulls when it cannot tell. */
export async function estimate() {
  try {
    const { quota, usage } = await navigator.storage.estimate();
    return { quota: quota ?? null, usage: usage ?? null };
  } catch {
    return { quota: null, usage: null };
  }
}

class OpfsStore {
  constructor(dir) {
    this.dir = dir;
    this.kind = "opfs";
  }

  /** @param {SegmentMeta} meta @param {Blob} blob */
  async put(meta, blob) {
    await this.write(`${name(meta.seq)}.webm`, blob);
    // The metadata last: a segment whose bytes did not make it is never listed.
    await this.write(`${name(meta.seq)}.json`, new Blob([JSON.stringify(meta)], { type: "application/json" }));
  }

  async write(file, blob) {
    const handle = await this.dir.getFileHandle(file, { create: true });
    const writable = await handle.createWritable();
    try {
      await writable.write(blob);
      await writable.close();
    } catch (err) {
      await writable.abort().catch(() => null);
      throw err;
    }
  }

  /** Every stored segment's metadata (in no particular order). @returns {Promise<SegmentMeta[]>} */
  async list() {
    const metas = [];
    // @ts-ignore: FileSystemDirectoryHandle is async-iterable (not in TypeScript's DOM lib yet)
    for await (const [file, handle] of this.dir.entries()) {
      if (!file.endsWith(".json")) continue;
      try {
        metas.push(JSON.parse(await (await handle.getFile()).text()));
      } catch {
        // A half-written record (the tab closed mid-write): left for remove() to clear.
      }
    }
    return metas;
  }

  /** @returns {Promise<Blob | null>} */
  async read(seq) {
    try {
      return await (await this.dir.getFileHandle(`${name(seq)}.webm`)).getFile();
    } catch {
      return null;
    }
  }

  /** @param {SegmentMeta} meta */
  async update(meta) {
    await this.write(`${name(meta.seq)}.json`, new Blob([JSON.stringify(meta)], { type: "application/json" }));
  }

  async remove(seq) {
    for (const file of [`${name(seq)}.json`, `${name(seq)}.webm`]) await this.dir.removeEntry(file).catch(() => null);
  }
}

const DB = "proctorhub-backfill";
const STORE = "segments";

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

class IdbStore {
  constructor(db, event, candidate) {
    this.db = db;
    this.event = event;
    this.candidate = candidate;
    this.kind = "indexeddb";
  }

  static async open(event, candidate) {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: ["event", "candidate", "seq"] });
    return new IdbStore(await promised(request), event, candidate);
  }

  tx(mode) {
    return this.db.transaction(STORE, mode).objectStore(STORE);
  }

  put(meta, blob) {
    return promised(this.tx("readwrite").put({ ...meta, blob }));
  }

  async list() {
    const range = IDBKeyRange.bound([this.event, this.candidate, -Infinity], [this.event, this.candidate, Infinity]);
    const rows = await promised(this.tx("readonly").getAll(range));
    return rows.map((row) => {
      const meta = { ...row };
      delete meta.blob;
      return meta;
    });
  }

  async read(seq) {
    const row = await promised(this.tx("readonly").get([this.event, this.candidate, seq]));
    return row ? row.blob : null;
  }

  async update(meta) {
    const blob = await this.read(meta.seq);
    if (blob) await this.put(meta, blob);
  }

  remove(seq) {
    return promised(this.tx("readwrite").delete([this.event, this.candidate, seq]));
  }
}

/** The store of one (event, candidate): OPFS where it works, else IndexedDB, else null (nothing is kept).
 * `prefer` = "indexeddb" skips OPFS (the tests use it to run the fallback in Chromium). */
export async function openStore(event, candidate, { prefer = "opfs" } = {}) {
  if (prefer === "opfs") {
    try {
      const root = await navigator.storage.getDirectory();
      const top = await root.getDirectoryHandle(ROOT, { create: true });
      const ev = await top.getDirectoryHandle(encodeURIComponent(event), { create: true });
      const dir = await ev.getDirectoryHandle(encodeURIComponent(candidate), { create: true });
      // createWritable is what we write with; without it (older Safari on the main thread) use IndexedDB.
      const probe = await dir.getFileHandle(".probe", { create: true });
      const writable = typeof probe.createWritable === "function";
      await dir.removeEntry(".probe").catch(() => null);
      if (writable) return new OpfsStore(dir);
    } catch {
      // no OPFS here (or not allowed): try IndexedDB
    }
  }
  try {
    return await IdbStore.open(event, candidate);
  } catch {
    return null;
  }
}
