// @ts-check
// The hub's HTTP API with the page's session token (`Authorization: Bearer <JWT>`).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
    // The hub's `invalid` messages start with the field name: "room_size: must be between 1 and 100".
    this.field = code === "invalid" ? message.split(":")[0] : null;
  }
}

export class Api {
  constructor(token, base = "") {
    this.token = token;
    this.base = base;
  }

  async call(method, path, body) {
    const headers = { Authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return response;
  }

  async json(method, path, body) {
    const response = await this.call(method, path, body);
    const text = await response.text();
    let parsed;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      const error = (parsed && parsed.error) || {};
      throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || text);
    }
    return parsed;
  }

  get(path) {
    return this.json("GET", path);
  }

  post(path, body = {}) {
    return this.json("POST", path, body);
  }

  patch(path, body) {
    return this.json("PATCH", path, body);
  }

  /** A download (CSV): the body as a Blob, with the error shape of json() on failure. */
  async blob(path) {
    const response = await this.call("GET", path);
    if (!response.ok) {
      const text = await response.text();
      let error;
      try {
        error = JSON.parse(text).error || {};
      } catch {
        error = {};
      }
      throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || text);
    }
    return response.blob();
  }
}

const e = encodeURIComponent;
export const paths = {
  events: () => "/api/v1/events",
  event: (id) => `/api/v1/events/${e(id)}`,
  sessions: (id) => `/api/v1/events/${e(id)}/sessions`,
  rooms: (id) => `/api/v1/events/${e(id)}/rooms`,
  rebalance: (id) => `/api/v1/events/${e(id)}/rebalance`,
  alerts: (id) => `/api/v1/events/${e(id)}/alerts`,
  report: (id, format) => `/api/v1/events/${e(id)}/report${format ? `?format=${e(format)}` : ""}`,
  timeline: (id, c) => `/api/v1/events/${e(id)}/candidates/${e(c)}/timeline`,
  recordings: (id, c) => `/api/v1/events/${e(id)}/candidates/${e(c)}/recordings`,
  acs: (id, c) => `/api/v1/events/${e(id)}/candidates/${e(c)}/acs`,
  backfill: (id, c) => `/api/v1/events/${e(id)}/candidates/${e(c)}/backfill`,
  backfillComplete: (id, c, s) => `/api/v1/events/${e(id)}/candidates/${e(c)}/backfill/${e(s)}/complete`,
};

/** The page's client config: which media plane to use. */
export async function clientConfig() {
  const response = await fetch("/client-config.json");
  return response.json();
}
