// Slipway's webhook relay: GitHub posts deliveries here (a public URL); each one is checked
// against X-Hub-Signature-256 over its raw body, stored durably in one Durable Object, and
// answered 202 only once stored. Slipway pulls them over an authenticated long poll and
// acknowledges each after storing it itself; unacknowledged deliveries are served again.

import { DurableObject } from "cloudflare:workers";

export interface Env {
  DELIVERIES: DurableObjectNamespace<DeliveryStore>;
  /** The webhook's secret, as set in GitHub (`wrangler secret put GITHUB_WEBHOOK_SECRET`). */
  GITHUB_WEBHOOK_SECRET?: string;
  /** The bearer token Slipway pulls with (`wrangler secret put RELAY_TOKEN`). */
  RELAY_TOKEN?: string;
  /** How long a delivery is kept after it arrived, acknowledged or not (default 72). */
  RETENTION_HOURS?: string;
}

/** A delivery as Slipway receives it: the raw body in base64, the headers it needs. */
export interface PulledDelivery {
  id: string;
  event: string;
  signature: string;
  content_type: string | null;
  received_at: number;
  body: string;
}

/** GitHub's largest payload (its documented cap); larger requests are refused. */
const MAX_PAYLOAD_BYTES = 25 * 1024 * 1024;
/** Durable Object SQLite values are limited to 2 MB: bodies are stored in parts of 1 MB. */
const PART_BYTES = 1024 * 1024;
/** One pull answers at most this many deliveries, and stops adding past this many bytes. */
const MAX_PULL = 500;
const MAX_PULL_BYTES = 8 * 1024 * 1024;
/** The longest a pull waits for a delivery (Cloudflare closes idle responses at 100 s). */
const MAX_WAIT_SECONDS = 50;
const DEFAULT_RETENTION_HOURS = 72;

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    try {
      if (url.pathname === "/health") {
        return json(200, { status: "ok" });
      }
      if (url.pathname === "/webhooks/github") {
        return request.method === "POST"
          ? await receive(request, env)
          : methodNotAllowed("POST");
      }
      if (url.pathname.startsWith("/relay/")) {
        const refusal = await authorize(request, env);
        if (refusal) return refusal;
        const store = deliveryStore(env);
        if (url.pathname === "/relay/deliveries") {
          // GET pulls; POST {"ack": [ids]} first acknowledges what the last pull brought
          // (one round trip, one turn of the Durable Object, per batch).
          if (request.method !== "GET" && request.method !== "POST") return methodNotAllowed("GET, POST");
          const ack = request.method === "POST" ? await deliveryIds(request, "ack") : [];
          if (ack === null) {
            return error(400, "bad_ack", 'expected a JSON body {"ack": ["<X-GitHub-Delivery>", ...]}');
          }
          const limit = boundedInt(url.searchParams.get("limit"), 100, 1, MAX_PULL);
          const wait = boundedInt(url.searchParams.get("wait"), 0, 0, MAX_WAIT_SECONDS);
          return json(200, await store.pull(limit, wait * 1000, ack));
        }
        if (url.pathname === "/relay/ack") {
          if (request.method !== "POST") return methodNotAllowed("POST");
          const ids = await deliveryIds(request, "ids");
          if (ids === null) {
            return error(400, "bad_ack", 'expected a JSON body {"ids": ["<X-GitHub-Delivery>", ...]}');
          }
          return json(200, await store.ack(ids));
        }
        if (url.pathname === "/relay/status") {
          if (request.method !== "GET") return methodNotAllowed("GET");
          return json(200, await store.status());
        }
      }
      return error(404, "not_found", `no route for ${url.pathname}`);
    } catch (e) {
      console.error("relay request failed", e);
      return error(500, "internal", "the relay failed; see its logs (wrangler tail)");
    }
  },
};

/** GitHub's side: verified, stored, then 202. Nothing is stored unless the signature holds. */
async function receive(request: Request, env: Env): Promise<Response> {
  if (!env.GITHUB_WEBHOOK_SECRET) {
    return error(503, "not_configured", "the relay has no GITHUB_WEBHOOK_SECRET: wrangler secret put GITHUB_WEBHOOK_SECRET");
  }
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > MAX_PAYLOAD_BYTES) {
    return error(413, "too_large", "a delivery is at most 25 MB");
  }
  const signature = request.headers.get("x-hub-signature-256");
  if (!signature) {
    return error(401, "unsigned", "missing X-Hub-Signature-256: configure the webhook with a secret");
  }
  const body = await request.arrayBuffer();
  if (body.byteLength > MAX_PAYLOAD_BYTES) {
    return error(413, "too_large", "a delivery is at most 25 MB");
  }
  if (!(await signatureMatches(env.GITHUB_WEBHOOK_SECRET, body, signature))) {
    console.warn("webhook delivery with a wrong signature refused");
    return error(401, "bad_signature", "X-Hub-Signature-256 does not match the body under the relay's GITHUB_WEBHOOK_SECRET");
  }
  const event = request.headers.get("x-github-event") ?? "";
  if (event.length === 0 || event.length > 64) {
    return error(400, "missing_event", "missing X-GitHub-Event header");
  }
  const id = request.headers.get("x-github-delivery") ?? "";
  if (!/^[A-Za-z0-9-]{1,100}$/.test(id)) {
    return error(400, "missing_delivery", "missing or malformed X-GitHub-Delivery header (a GUID)");
  }
  const stored = await deliveryStore(env).store({
    id,
    event,
    signature,
    content_type: request.headers.get("content-type"),
    body,
  });
  return json(202, { status: stored, delivery: id });
}

/** HMAC-SHA256 of the raw body, compared in constant time with the header's digest. */
async function signatureMatches(secret: string, body: ArrayBuffer, header: string): Promise<boolean> {
  const given = header.startsWith("sha256=") ? hexBytes(header.slice(7)) : null;
  if (given === null || given.byteLength !== 32) return false;
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const expected = await crypto.subtle.sign("HMAC", key, body);
  return crypto.subtle.timingSafeEqual(expected, given);
}

/** Slipway's side: `Authorization: Bearer <RELAY_TOKEN>`, compared in constant time. */
async function authorize(request: Request, env: Env): Promise<Response | null> {
  if (!env.RELAY_TOKEN) {
    return error(503, "not_configured", "the relay has no RELAY_TOKEN: wrangler secret put RELAY_TOKEN");
  }
  const header = request.headers.get("authorization") ?? "";
  const given = header.startsWith("Bearer ") ? header.slice(7) : "";
  // Both sides hashed first: equal lengths, and the comparison says nothing about the token.
  const [a, b] = await Promise.all([sha256(given), sha256(env.RELAY_TOKEN)]);
  if (given.length > 0 && crypto.subtle.timingSafeEqual(a, b)) return null;
  return error(401, "unauthorized", "the relay needs 'Authorization: Bearer <RELAY_TOKEN>' (SLIPWAY_RELAY_TOKEN on Slipway's side)");
}

function deliveryStore(env: Env): DurableObjectStub<DeliveryStore> {
  // One object holds every delivery: one ordered queue, one place to wait on.
  return env.DELIVERIES.get(env.DELIVERIES.idFromName("github"));
}

async function deliveryIds(request: Request, field: "ids" | "ack"): Promise<string[] | null> {
  let parsed: unknown;
  try {
    parsed = await request.json();
  } catch {
    return null;
  }
  const ids = (parsed as Record<string, unknown> | null)?.[field];
  if (!Array.isArray(ids) || ids.length > 10_000 || !ids.every((i) => typeof i === "string")) {
    return null;
  }
  return ids as string[];
}

interface NewDelivery {
  id: string;
  event: string;
  signature: string;
  content_type: string | null;
  body: ArrayBuffer;
}

/** Every delivery, in arrival order, in SQLite storage (durable before any answer leaves). */
export class DeliveryStore extends DurableObject<Env> {
  private sql: SqlStorage;
  /** Pulls waiting for the next delivery. */
  private waiting = new Set<() => void>();
  /** Whether an alarm is known to be pending (saves a storage read per delivery). */
  private alarmSet = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS deliveries (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      event TEXT NOT NULL,
      signature TEXT NOT NULL,
      content_type TEXT,
      size INTEGER NOT NULL,
      received_at INTEGER NOT NULL,
      acked_at INTEGER
    )`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS parts (
      delivery_seq INTEGER NOT NULL,
      part INTEGER NOT NULL,
      data BLOB NOT NULL,
      PRIMARY KEY (delivery_seq, part)
    )`);
    this.sql.exec("CREATE INDEX IF NOT EXISTS pending ON deliveries (seq) WHERE acked_at IS NULL");
  }

  /** Stores a delivery once per X-GitHub-Delivery; GitHub's redelivery is a duplicate. */
  async store(delivery: NewDelivery): Promise<"stored" | "duplicate"> {
    const now = Date.now();
    const stored = this.ctx.storage.transactionSync(() => {
      const seen = this.sql.exec("SELECT 1 FROM deliveries WHERE id = ?", delivery.id).toArray();
      if (seen.length > 0) return false;
      const seq = this.sql
        .exec(
          `INSERT INTO deliveries (id, event, signature, content_type, size, received_at)
           VALUES (?, ?, ?, ?, ?, ?) RETURNING seq`,
          delivery.id,
          delivery.event,
          delivery.signature,
          delivery.content_type,
          delivery.body.byteLength,
          now,
        )
        .one().seq as number;
      for (let offset = 0, part = 0; offset < delivery.body.byteLength || part === 0; offset += PART_BYTES, part++) {
        const data = delivery.body.slice(offset, offset + PART_BYTES);
        this.sql.exec("INSERT INTO parts (delivery_seq, part, data) VALUES (?, ?, ?)", seq, part, data);
      }
      return true;
    });
    if (!stored) return "duplicate";
    await this.pruneLater();
    const woken = [...this.waiting];
    this.waiting.clear();
    for (const wake of woken) wake();
    return "stored";
  }

  /** Acknowledges `ack`, then serves unacknowledged deliveries oldest first; with none,
   * waits up to `waitMs` for one. */
  async pull(limit: number, waitMs: number, ack: string[] = []): Promise<{ deliveries: PulledDelivery[]; backlog: number }> {
    if (ack.length > 0) this.acknowledge(ack);
    if (waitMs > 0 && this.backlog() === 0) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiting.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, waitMs);
        this.waiting.add(wake);
      });
    }
    const rows = this.sql
      .exec(
        `SELECT seq, id, event, signature, content_type, size, received_at FROM deliveries
         WHERE acked_at IS NULL ORDER BY seq LIMIT ?`,
        limit,
      )
      .toArray();
    const deliveries: PulledDelivery[] = [];
    let bytes = 0;
    for (const row of rows) {
      if (deliveries.length > 0 && bytes + (row.size as number) > MAX_PULL_BYTES) break;
      bytes += row.size as number;
      deliveries.push({
        id: row.id as string,
        event: row.event as string,
        signature: row.signature as string,
        content_type: row.content_type as string | null,
        received_at: row.received_at as number,
        body: base64(this.body(row.seq as number, row.size as number)),
      });
    }
    return { deliveries, backlog: this.backlog() };
  }

  /** Marks deliveries as stored by Slipway: they are not served again. Unknown ids are ignored. */
  async ack(ids: string[]): Promise<{ acknowledged: number; backlog: number }> {
    return { acknowledged: this.acknowledge(ids), backlog: this.backlog() };
  }

  private acknowledge(ids: string[]): number {
    const now = Date.now();
    let acknowledged = 0;
    this.ctx.storage.transactionSync(() => {
      for (const id of ids) {
        acknowledged += this.sql.exec(
          "UPDATE deliveries SET acked_at = ? WHERE id = ? AND acked_at IS NULL",
          now,
          id,
        ).rowsWritten;
      }
    });
    return acknowledged;
  }

  async status(): Promise<{ backlog: number; stored: number; oldest_pending_at: number | null; last_received_at: number | null }> {
    const row = this.sql
      .exec(
        `SELECT COUNT(*) AS stored, MAX(received_at) AS last,
                MIN(CASE WHEN acked_at IS NULL THEN received_at END) AS oldest
         FROM deliveries`,
      )
      .one();
    return {
      backlog: this.backlog(),
      stored: row.stored as number,
      oldest_pending_at: (row.oldest as number | null) ?? null,
      last_received_at: (row.last as number | null) ?? null,
    };
  }

  /** Drops deliveries older than the retention, then wakes again when the next one expires. */
  async alarm(): Promise<void> {
    const now = Date.now();
    const cutoff = now - this.retentionMs();
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        "DELETE FROM parts WHERE delivery_seq IN (SELECT seq FROM deliveries WHERE received_at <= ?)",
        cutoff,
      );
      this.sql.exec("DELETE FROM deliveries WHERE received_at <= ?", cutoff);
    });
    const next = this.sql.exec("SELECT MIN(received_at) AS oldest FROM deliveries").one().oldest as number | null;
    this.alarmSet = next !== null;
    // Strictly later than this alarm: an alarm set to the time of the one running (it may
    // fire a little early) counts as done when it returns, and pruning would stop for good.
    if (next !== null) await this.ctx.storage.setAlarm(Math.max(next + this.retentionMs(), now + 1_000));
  }

  private async pruneLater(): Promise<void> {
    if (this.alarmSet) return;
    if ((await this.ctx.storage.getAlarm()) === null) {
      await this.ctx.storage.setAlarm(Date.now() + this.retentionMs());
    }
    this.alarmSet = true;
  }

  private retentionMs(): number {
    const hours = Number(this.env.RETENTION_HOURS ?? DEFAULT_RETENTION_HOURS);
    return (Number.isFinite(hours) && hours > 0 ? hours : DEFAULT_RETENTION_HOURS) * 3_600_000;
  }

  private backlog(): number {
    return this.sql.exec("SELECT COUNT(*) AS n FROM deliveries WHERE acked_at IS NULL").one().n as number;
  }

  private body(seq: number, size: number): Uint8Array {
    const body = new Uint8Array(size);
    let offset = 0;
    for (const row of this.sql.exec("SELECT data FROM parts WHERE delivery_seq = ? ORDER BY part", seq)) {
      const part = new Uint8Array(row.data as ArrayBuffer);
      body.set(part, offset);
      offset += part.byteLength;
    }
    return body;
  }
}

function base64(bytes: Uint8Array): string {
  const native = (bytes as { toBase64?: () => string }).toBase64;
  if (typeof native === "function") return native.call(bytes);
  let text = "";
  for (let i = 0; i < bytes.byteLength; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function hexBytes(hex: string): ArrayBuffer | null {
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length % 2 !== 0) return null;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes.buffer;
}

async function sha256(text: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
}

function boundedInt(text: string | null, fallback: number, min: number, max: number): number {
  const n = text === null ? fallback : Number.parseInt(text, 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

function error(status: number, code: string, message: string): Response {
  return json(status, { error: { code, message } });
}

function methodNotAllowed(allowed: string): Response {
  return new Response(JSON.stringify({ error: { code: "method_not_allowed", message: `use ${allowed}` } }), {
    status: 405,
    headers: { "content-type": "application/json", allow: allowed },
  });
}
