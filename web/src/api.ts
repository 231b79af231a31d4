// api.ts: the gateway's HTTP API as the page uses it: GET /api/swarm (the
// dashboard's JSON, docs/protocol.md "Dashboard JSON"), GET /api/credits (the
// contributors' leaderboard), GET /v1/models, and
// POST /v1/chat/completions with stream: true (server-sent events in OpenAI's
// chunk format, ending "data: [DONE]").

export interface LayerRange { begin: number; end: number } // half-open: [begin, end)

export interface Stage {
  node_id: string;      // the fingerprint of the stage's key: what identifies it
  display_name: string; // the stage's own --name ('' none): not unique, not checked
  unsealed_replies: number; // its replies that did not open with its key
  region: string;
  broker_id: string;
  model_id: string;
  layers: LayerRange;
  rtt_ms: number;       // broker <-> stage round trip
  age_ms: number;       // since its last heartbeat
  threads: number;
  ms_per_layer: number; // measured decode compute per block
  load: { active_sessions: number; queued_requests: number; kv_bytes: number; busy: number };
}

export interface Sample {
  t_ms: number;              // wall clock at the end of a generation
  prompt_tokens: number;
  completion_tokens: number;
  tokens_per_s: number;      // decode speed
  ttft_ms: number;           // time to first token
  acceptance_rate: number;
}

export interface Swarm {
  time_ms: number;
  gateway: { id: string; region: string };
  model: { id: string; n_layer: number; n_embd: number; n_vocab: number; checksum: string };
  chat_format: string;
  servable: boolean;
  unsealed_replies_total: number;
  gaps: LayerRange[];
  unverified: LayerRange[]; // layers with a single live host: audits cannot check them (docs/security.md)
  stages: Stage[];
  sessions: { session_id: string; tokens: number; tokens_per_s: number; acceptance_rate: number }[];
  counters: {
    requests: number; completions: number; tokens: number; failed: number;
    rate_limited: number; busy_rejected: number; active_generations: number;
  };
  history: Sample[];
}

const num = (x: unknown, d = 0): number => (typeof x === 'number' && Number.isFinite(x) ? x : d);
const str = (x: unknown, d = ''): string => (typeof x === 'string' ? x : d);
const arr = (x: unknown): unknown[] => (Array.isArray(x) ? x : []);
const obj = (x: unknown): Record<string, unknown> =>
  (x && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : {});
const range = (x: unknown): LayerRange => ({ begin: num(obj(x).begin), end: num(obj(x).end) });

/** Reads /api/swarm's JSON defensively: missing or mistyped fields get defaults. */
export function parseSwarm(raw: unknown): Swarm {
  const o = obj(raw), g = obj(o.gateway), m = obj(o.model), c = obj(o.counters);
  return {
    time_ms: num(o.time_ms, Date.now()),
    gateway: { id: str(g.id), region: str(g.region) },
    model: { id: str(m.id), n_layer: num(m.n_layer), n_embd: num(m.n_embd), n_vocab: num(m.n_vocab), checksum: str(m.checksum) },
    chat_format: str(o.chat_format),
    servable: o.servable === true,
    unsealed_replies_total: num(o.unsealed_replies_total),
    gaps: arr(o.gaps).map(range),
    unverified: arr(obj(o.audit).unverified).map(range),
    stages: arr(o.stages).map((x) => {
      const s = obj(x), l = obj(s.load);
      return {
        node_id: str(s.node_id), display_name: str(s.display_name), unsealed_replies: num(s.unsealed_replies), region: str(s.region, '?'), broker_id: str(s.broker_id), model_id: str(s.model_id),
        layers: range(s.layers), rtt_ms: num(s.rtt_ms), age_ms: num(s.age_ms), threads: num(s.threads),
        ms_per_layer: num(s.ms_per_layer),
        load: { active_sessions: num(l.active_sessions), queued_requests: num(l.queued_requests), kv_bytes: num(l.kv_bytes), busy: num(l.busy) },
      };
    }),
    sessions: arr(o.sessions).map((x) => {
      const s = obj(x);
      return { session_id: str(s.session_id), tokens: num(s.tokens), tokens_per_s: num(s.tokens_per_s), acceptance_rate: num(s.acceptance_rate) };
    }),
    counters: {
      requests: num(c.requests), completions: num(c.completions), tokens: num(c.tokens), failed: num(c.failed),
      rate_limited: num(c.rate_limited), busy_rejected: num(c.busy_rejected), active_generations: num(c.active_generations),
    },
    history: arr(o.history).map((x) => {
      const s = obj(x);
      return {
        t_ms: num(s.t_ms), prompt_tokens: num(s.prompt_tokens), completion_tokens: num(s.completion_tokens),
        tokens_per_s: num(s.tokens_per_s), ttft_ms: num(s.ttft_ms), acceptance_rate: num(s.acceptance_rate),
      };
    }),
  };
}

export async function fetchSwarm(signal?: AbortSignal): Promise<Swarm> {
  const r = await fetch('/api/swarm', { signal, cache: 'no-store' });
  if (!r.ok) throw new Error(`/api/swarm: HTTP ${r.status}`);
  return parseSwarm(await r.json());
}

/** One key of the contributors' leaderboard (GET /api/credits; docs/protocol.md). */
export interface Contributor {
  node_id: string;      // the fingerprint of the key
  display_name: string; // last seen in the directory ('' none): not unique, not checked
  granted: number;      // credit units granted (one unit: a token through a billion parameters)
  pending: number;      // credit whose audit window is still open
  clawed_back: number;  // credit taken back by failed audits
  verified: number;     // results audits confirmed
  failed: number;       // audits failed
  consecutive: number;  // verified results since the last failure
  audit_rate: number;   // share of its requests audited, 0..1
  trusted: boolean;
  banned_until: number; // unix s, 0: never banned
}

export interface Credits { contributors: Contributor[]; total: number; time: number }

/** Reads /api/credits's JSON defensively. */
export function parseCredits(raw: unknown): Credits {
  const o = obj(raw);
  return {
    total: num(o.total),
    time: num(o.time, Date.now() / 1000),
    contributors: arr(o.contributors).map((x) => {
      const c = obj(x);
      return {
        node_id: str(c.node_id), display_name: str(c.display_name), granted: num(c.granted), pending: num(c.pending),
        clawed_back: num(c.clawed_back), verified: num(c.verified), failed: num(c.failed),
        consecutive: num(c.consecutive), audit_rate: num(c.audit_rate, 1), trusted: c.trusted === true,
        banned_until: num(c.banned_until),
      };
    }),
  };
}

/** The leaderboard, or null when this gateway keeps none (no keys: 404). */
export async function fetchCredits(signal?: AbortSignal): Promise<Credits | null> {
  const r = await fetch('/api/credits', { signal, cache: 'no-store' });
  if (r.status === 404) return null;
  if (!r.ok) throw new Error(`/api/credits: HTTP ${r.status}`);
  return parseCredits(await r.json());
}

/** A credit amount with 4 significant digits ("0.005271", "12.35", "1.235e+6"). */
export function credit(x: number): string {
  return x === 0 ? '0' : Math.abs(x) >= 1e5 ? x.toExponential(3) : x.toPrecision(4);
}

export async function fetchModelId(): Promise<string> {
  const r = await fetch('/v1/models', { cache: 'no-store' });
  if (!r.ok) throw new Error(`/v1/models: HTTP ${r.status}`);
  const j = obj(await r.json());
  return str(obj(arr(j.data)[0]).id);
}

/** The layers [0, n_layer) each covered by how many stages. */
export function coverage(n_layer: number, stages: Stage[]): number[] {
  const c = new Array<number>(Math.max(0, n_layer)).fill(0);
  for (const s of stages)
    for (let l = Math.max(0, s.layers.begin); l < Math.min(n_layer, s.layers.end); l++) c[l]++;
  return c;
}

/** "12 B", "3.4 KiB", "1.2 MiB", "2.0 GiB". */
export function bytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${u[i]}`;
}

export type ChatMessage = { role: 'system' | 'user' | 'assistant'; content: string };

/** One event of a chat completion stream. */
export type StreamEvent = { text?: string; finish?: string; error?: string; done?: boolean };

/** Splits buffered SSE text into complete events; returns them and the unfinished rest. */
export function parseSse(buffer: string): { events: StreamEvent[]; rest: string } {
  const events: StreamEvent[] = [];
  const blocks = buffer.replace(/\r\n/g, '\n').split('\n\n');
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
    if (!data) continue;
    if (data === '[DONE]') { events.push({ done: true }); continue; }
    try {
      const j = obj(JSON.parse(data));
      if (j.error) { events.push({ error: str(obj(j.error).message, 'error') }); continue; }
      const choice = obj(arr(j.choices)[0]);
      const delta = obj(choice.delta);
      events.push({ text: str(delta.content), finish: typeof choice.finish_reason === 'string' ? choice.finish_reason : undefined });
    } catch {
      events.push({ error: 'the server sent an event that is not JSON' });
    }
  }
  return { events, rest };
}

/** Streams a chat completion; calls onText for every piece of text as it arrives. */
export async function streamChat(
  body: { model: string; messages: ChatMessage[]; max_tokens: number; temperature: number },
  onText: (t: string) => void,
  signal: AbortSignal,
): Promise<{ finish?: string }> {
  const r = await fetch('/v1/chat/completions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!r.ok || !r.body) {
    let msg = `HTTP ${r.status}`;
    try { msg = str(obj(obj(await r.json()).error).message, msg); } catch { /* not JSON */ }
    throw new Error(msg);
  }
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '', finish: string | undefined;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    const { events, rest } = parseSse(buf);
    buf = rest;
    for (const e of events) {
      if (e.error) throw new Error(e.error);
      if (e.text) onText(e.text);
      if (e.finish) finish = e.finish;
      if (e.done) return { finish };
    }
  }
  return { finish };
}
