// Dashboard.tsx: the swarm as the gateway sees it, polled from /api/swarm every 2 s.
import { useEffect, useMemo, useRef, useState } from 'react';
import type uPlot from 'uplot';
import { bytes, coverage, credit, fetchCredits, fetchSwarm, type Credits, type Stage, type Swarm } from './api';
import { Plot } from './Plot';

const POLL_MS = 2000;
const KEEP_POLLS = 150;

type Poll = { t: number; tokens: number };

function layersText(s: Stage): string {
  return s.layers.end > s.layers.begin ? `${s.layers.begin}-${s.layers.end - 1}` : '-';
}

function short(id: string): string {
  return id.length > 12 ? id.slice(0, 12) + '\u2026' : id;
}

function Coverage({ swarm }: { swarm: Swarm }) {
  const n = swarm.model.n_layer;
  const cov = coverage(n, swarm.stages);
  const stages = [...swarm.stages].sort((a, b) => a.layers.begin - b.layers.begin || a.layers.end - b.layers.end);
  const span = (g: { begin: number; end: number }) => (g.end - 1 > g.begin ? `${g.begin}-${g.end - 1}` : `${g.begin}`);
  const gaps = swarm.gaps.map(span);
  const unverified = swarm.unverified.map(span);
  const pct = (l: number) => `${(100 * l) / Math.max(1, n)}%`;
  return (
    <section className="card" data-testid="coverage">
      <h2>Model and layer coverage</h2>
      <p>
        <b>{swarm.model.id || '?'}</b> &middot; {n} layers &middot; hidden size {swarm.model.n_embd} &middot; vocabulary{' '}
        {swarm.model.n_vocab} &middot; chat format {swarm.chat_format || '?'}
      </p>
      <div className="layers" style={{ gridTemplateColumns: `repeat(${Math.max(1, n)}, 1fr)` }}>
        {cov.map((c, l) => (
          <div key={l} className={c === 0 ? 'layer gap' : c === 1 ? 'layer one' : 'layer many'}
               title={`layer ${l}: ${c} stage(s)`} data-testid="layer" data-covered={c}>
            {n <= 48 ? l : ''}
          </div>
        ))}
      </div>
      <div className="gantt">
        {stages.map((s) => (
          <div key={s.node_id} className="gantt-row">
            <div className="gantt-bar" style={{ left: pct(s.layers.begin), width: pct(s.layers.end - s.layers.begin) }}
                 title={`${s.node_id}${s.display_name ? ` "${s.display_name}"` : ''} (${s.region}) layers ${layersText(s)}`}>
              {s.display_name ? `${s.display_name} ` : ''}{short(s.node_id)} &middot; {s.region}
            </div>
          </div>
        ))}
      </div>
      <p data-testid="coverage-text" className={gaps.length ? 'bad' : 'good'}>
        {gaps.length ? `missing layers ${gaps.join(', ')}: no live stage holds them` : `all ${n} layers covered`}
      </p>
      {unverified.length > 0 && (
        <p data-testid="unverified-text" className="muted">
          unverified layers {unverified.join(', ')}: a single live host, so audits cannot check them (an
          operator&apos;s audit stage closes the gap)
        </p>
      )}
    </section>
  );
}

function Regions({ stages }: { stages: Stage[] }) {
  const regions = useMemo(() => {
    const m = new Map<string, Stage[]>();
    for (const s of stages) m.set(s.region, [...(m.get(s.region) ?? []), s]);
    for (const v of m.values()) v.sort((a, b) => a.layers.begin - b.layers.begin);
    return [...m.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  }, [stages]);
  return (
    <section className="card">
      <h2>Nodes by region</h2>
      {regions.length === 0 && <p className="muted">No live stages.</p>}
      {regions.map(([region, list]) => (
        <div key={region} data-testid="region" data-region={region}>
          <h3>{region} <span className="muted">({list.length} stage{list.length === 1 ? '' : 's'})</span></h3>
          <div className="scroll">
            <table>
              <thead>
                <tr>
                  <th>node</th><th>layers</th><th>broker</th><th>RTT ms</th><th>heartbeat age ms</th>
                  <th>sessions</th><th>queued</th><th>KV cache</th><th>busy</th><th>ms/layer</th>
                  <th title="replies that did not open with the stage's key: rejected">unsealed</th>
                </tr>
              </thead>
              <tbody>
                {list.map((s) => (
                  <tr key={s.node_id} data-testid="stage-row" data-node-id={s.node_id}>
                    <td title={s.node_id} data-testid="stage-node">
                      {s.display_name && <span className="name">{s.display_name} </span>}
                      <code>{short(s.node_id)}</code>
                    </td>
                    <td>{layersText(s)}</td>
                    <td title={s.broker_id}><code>{short(s.broker_id)}</code></td>
                    <td>{s.rtt_ms.toFixed(2)}</td>
                    <td>{s.age_ms}</td>
                    <td>{s.load.active_sessions}</td>
                    <td>{s.load.queued_requests}</td>
                    <td>{bytes(s.load.kv_bytes)}</td>
                    <td>
                      <span className="busy"><span style={{ width: `${Math.min(100, 100 * s.load.busy)}%` }} /></span>
                      {(100 * s.load.busy).toFixed(0)}%
                    </td>
                    <td>{s.ms_per_layer.toFixed(3)}</td>
                    <td className={s.unsealed_replies ? 'bad' : ''}>{s.unsealed_replies}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </div>
      ))}
    </section>
  );
}

/** The contributors' leaderboard: credit per key, audits, trust (GET /api/credits). */
function Contributors({ credits }: { credits: Credits }) {
  const now = credits.time;
  return (
    <section className="card" data-testid="contributors">
      <h2>Contributors <span className="muted">(credit granted by this gateway, by key)</span></h2>
      {credits.contributors.length === 0 ? <p className="muted">No contributions yet.</p> : (
        <div className="scroll">
          <table>
            <thead>
              <tr>
                <th>#</th><th>key</th><th title="credit units: one token through a billion parameters">granted</th>
                <th title="credit whose audit window is still open">pending</th><th>clawed back</th>
                <th title="results audits confirmed / audits failed">verified / failed</th>
                <th title="share of its requests the gateway audits">audit rate</th><th>status</th>
              </tr>
            </thead>
            <tbody>
              {credits.contributors.map((c, i) => {
                const banned = c.banned_until > now;
                return (
                  <tr key={c.node_id} data-testid="contributor-row" data-node-id={c.node_id}
                      data-granted={c.granted} data-pending={c.pending}>
                    <td>{i + 1}</td>
                    <td title={c.node_id} data-testid="contributor-node">
                      {c.display_name && <span className="name">{c.display_name} </span>}
                      <code>{short(c.node_id)}</code>
                    </td>
                    <td data-testid="contributor-granted">{credit(c.granted)}</td>
                    <td>{credit(c.pending)}</td>
                    <td className={c.clawed_back > 0 ? 'bad' : ''}>{credit(c.clawed_back)}</td>
                    <td>{c.verified} / <span className={c.failed ? 'bad' : ''}>{c.failed}</span></td>
                    <td>{(100 * c.audit_rate).toFixed(0)}%</td>
                    <td data-testid="contributor-status">
                      {banned && <span className="badge bad"
                        title={`until ${new Date(c.banned_until * 1000).toLocaleString()}`}>banned</span>}
                      {!banned && c.trusted && <span className="badge good">trusted</span>}
                      {!banned && !c.trusted && <span className="badge muted">new</span>}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {credits.total > credits.contributors.length &&
        <p className="muted small">the top {credits.contributors.length} of {credits.total} keys</p>}
    </section>
  );
}

export function Dashboard() {
  const [swarm, setSwarm] = useState<Swarm | null>(null);
  const [offline, setOffline] = useState<string | null>(null);
  const [polls, setPolls] = useState<Poll[]>([]);
  const [credits, setCredits] = useState<Credits | null>(null);
  const last = useRef<Poll | null>(null);

  useEffect(() => {
    let stop = false, timer = 0;
    const ctl = new AbortController();
    const tick = async () => {
      try {
        const s = await fetchSwarm(ctl.signal);
        if (stop) return;
        setSwarm(s);
        const cr = await fetchCredits(ctl.signal).catch(() => undefined); // null: the gateway keeps no credits
        if (!stop && cr !== undefined) setCredits(cr); // a failed read keeps the last leaderboard
        setOffline(null);
        const p = { t: s.time_ms / 1000, tokens: s.counters.tokens };
        if (!last.current || p.t > last.current.t) {
          last.current = p;
          setPolls((old) => [...old, p].slice(-KEEP_POLLS));
        }
      } catch (e) {
        if (!stop) setOffline(e instanceof Error ? e.message : String(e));
      }
      if (!stop) timer = window.setTimeout(tick, POLL_MS);
    };
    tick();
    return () => { stop = true; ctl.abort(); clearTimeout(timer); };
  }, []);

  // throughput: per generation (decode tokens/s) and the swarm's (tokens between polls / seconds)
  const throughput = useMemo<uPlot.AlignedData>(() => {
    const pts = new Map<number, [number | null, number | null]>();
    for (const h of swarm?.history ?? []) pts.set(h.t_ms / 1000, [h.tokens_per_s, null]);
    for (let i = 1; i < polls.length; i++) {
      const dt = polls[i].t - polls[i - 1].t;
      if (dt > 0) {
        const v = Math.max(0, (polls[i].tokens - polls[i - 1].tokens) / dt);
        const old = pts.get(polls[i].t);
        pts.set(polls[i].t, [old ? old[0] : null, v]);
      }
    }
    const xs = [...pts.keys()].sort((a, b) => a - b);
    return [xs, xs.map((x) => pts.get(x)![0]), xs.map((x) => pts.get(x)![1])];
  }, [swarm, polls]);
  const ttft = useMemo<uPlot.AlignedData>(() => {
    const h = [...(swarm?.history ?? [])].sort((a, b) => a.t_ms - b.t_ms);
    return [h.map((x) => x.t_ms / 1000), h.map((x) => x.ttft_ms)];
  }, [swarm]);

  return (
    <main>
      {offline && <div className="banner" data-testid="offline">gateway unreachable, retrying ({offline})</div>}
      {!swarm && !offline && <p className="muted">Loading&hellip;</p>}
      {swarm && (
        <>
          <div className="cards">
            <div className="stat wide"><span>model</span><b data-testid="model-id" title={swarm.model.id}>{swarm.model.id}</b></div>
            <div className="stat"><span>servable</span>
              <b data-testid="servable" className={swarm.servable ? 'good' : 'bad'}>{swarm.servable ? 'yes' : 'no'}</b></div>
            <div className="stat"><span>live stages</span><b data-testid="n-stages">{swarm.stages.length}</b></div>
            <div className="stat"><span>active generations</span><b>{swarm.counters.active_generations}</b></div>
            <div className="stat"><span>tokens generated</span><b data-testid="tokens-total">{swarm.counters.tokens}</b></div>
            <div className="stat"><span>HTTP requests</span><b>{swarm.counters.requests}</b></div>
            <div className="stat"><span>rate limited</span><b>{swarm.counters.rate_limited}</b></div>
          </div>
          <Coverage swarm={swarm} />
          <Regions stages={swarm.stages} />
          {credits && <Contributors credits={credits} />}
          <div className="plots">
            <Plot testid="plot-throughput" title="Throughput" unit="tokens/s" data={throughput}
                  series={[{ label: 'decode tokens/s per generation', color: '#2563eb', points: true },
                           { label: 'swarm tokens/s', color: '#16a34a', points: false }]} />
            <Plot testid="plot-ttft" title="Time to first token" unit="ms" data={ttft}
                  series={[{ label: 'time to first token (ms)', color: '#d97706', points: true }]} />
          </div>
          <section className="card">
            <h2>Sessions in progress</h2>
            {swarm.sessions.length === 0 ? <p className="muted">None.</p> : (
              <table>
                <thead><tr><th>session</th><th>tokens</th><th>tokens/s</th><th>acceptance rate</th></tr></thead>
                <tbody>
                  {swarm.sessions.map((s) => (
                    <tr key={s.session_id} data-testid="session-row">
                      <td><code>{short(s.session_id)}</code></td><td>{s.tokens}</td>
                      <td>{s.tokens_per_s.toFixed(1)}</td><td>{(100 * s.acceptance_rate).toFixed(0)}%</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
          <p className="muted small">gateway <code>{swarm.gateway.id}</code> in region {swarm.gateway.region} &middot;
            model checksum <code>{swarm.model.checksum}</code> &middot; <a href="/metrics">Prometheus metrics</a></p>
        </>
      )}
    </main>
  );
}
