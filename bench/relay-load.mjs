// Posts GitHub-signed deliveries to the relay and records when each 202 came back.
// Usage: node bench/relay-load.mjs URL SECRET BODY_FILE COUNT CONNECTIONS PACE_MS OUT_JSON
// PACE_MS > 0 sends one at a time with that pause (a trickle); 0 sends as fast as CONNECTIONS
// allow (a burst). OUT_JSON gets {delivery id: epoch ms of its 202}.
import { createHmac } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";

const [url, secret, bodyFile, count, connections, pace, out] = process.argv.slice(2);
const body = readFileSync(bodyFile);
const signature = "sha256=" + createHmac("sha256", secret).update(body).digest("hex");
const run = Math.random().toString(36).slice(2, 8);
const answered = {};
let next = 0;
let refused = 0;
const others = {};
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function worker() {
  for (;;) {
    const i = next++;
    if (i >= Number(count)) return;
    const id = `bench-${run}-${i}`;
    const response = await fetch(`${url}/webhooks/github`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-github-event": "pull_request",
        "x-github-delivery": id,
        "x-hub-signature-256": signature,
      },
      body,
    });
    const text = await response.text();
    if (response.status === 202) answered[id] = now();
    else {
      refused++;
      others[response.status] ??= text.slice(0, 200);
    }
    if (Number(pace) > 0) await sleep(Number(pace));
  }
}

const started = now();
await Promise.all(Array.from({ length: Number(pace) > 0 ? 1 : Number(connections) }, worker));
const took = (now() - started) / 1000;
writeFileSync(out, JSON.stringify(answered));
const n = Object.keys(answered).length;
console.log(`relay answered ${n} × 202 (${refused} other) in ${took.toFixed(2)} s: ${(n / took).toFixed(0)}/s`);
for (const [status, body] of Object.entries(others)) console.log(`  answered ${status}: ${body}`);
