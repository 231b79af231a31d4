// Chat.tsx: a chat that streams from POST /v1/chat/completions.
import { useEffect, useRef, useState } from 'react';
import { fetchModelId, streamChat, type ChatMessage } from './api';

type Shown = ChatMessage & { streaming?: boolean; stats?: string };

export function Chat() {
  const [model, setModel] = useState('');
  const [messages, setMessages] = useState<Shown[]>([]);
  const [input, setInput] = useState('');
  const [maxTokens, setMaxTokens] = useState(64);
  const [temperature, setTemperature] = useState(0.8);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const end = useRef<HTMLDivElement>(null);

  useEffect(() => {
    fetchModelId().then(setModel).catch((e) => setError(`cannot list models: ${e instanceof Error ? e.message : e}`));
    return () => abort.current?.abort();
  }, []);
  useEffect(() => { end.current?.scrollIntoView({ block: 'end' }); }, [messages]);

  async function send() {
    const text = input.trim();
    if (!text || busy) return;
    const history: ChatMessage[] = [...messages.map(({ role, content }) => ({ role, content })), { role: 'user', content: text }];
    setMessages([...history, { role: 'assistant', content: '', streaming: true }]);
    setInput('');
    setError(null);
    setBusy(true);
    const ctl = new AbortController();
    abort.current = ctl;
    const t0 = performance.now();
    let first = 0, pieces = 0;
    const update = (f: (m: Shown) => Shown) =>
      setMessages((old) => old.map((m, i) => (i === old.length - 1 ? f(m) : m)));
    try {
      const { finish } = await streamChat(
        { model, messages: history, max_tokens: maxTokens, temperature },
        (t) => {
          if (!first) first = performance.now();
          pieces++;
          update((m) => ({ ...m, content: m.content + t }));
        },
        ctl.signal,
      );
      const ttft = first ? `${(first - t0).toFixed(0)} ms to first token` : 'no text';
      update((m) => ({ ...m, streaming: false, stats: `${pieces} chunks streamed \u00b7 ${ttft} \u00b7 finish: ${finish ?? '?'}` }));
    } catch (e) {
      const aborted = ctl.signal.aborted;
      update((m) => ({ ...m, streaming: false, stats: aborted ? 'stopped' : 'failed' }));
      if (!aborted) setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
      abort.current = null;
    }
  }

  return (
    <main className="chat">
      <div className="chat-controls">
        <span className="muted">model <b>{model || '?'}</b></span>
        <label>max tokens <input type="number" min={1} max={2048} value={maxTokens}
          onChange={(e) => setMaxTokens(Math.max(1, Number(e.target.value) || 1))} data-testid="chat-max-tokens" /></label>
        <label>temperature <input type="number" min={0} max={2} step={0.1} value={temperature}
          onChange={(e) => setTemperature(Math.min(2, Math.max(0, Number(e.target.value) || 0)))} data-testid="chat-temperature" /></label>
        <button onClick={() => { abort.current?.abort(); setMessages([]); setError(null); }}>New chat</button>
      </div>
      <div className="messages">
        {messages.length === 0 && <p className="muted">Say something; the answer streams from the swarm.</p>}
        {messages.map((m, i) => (
          <div key={i} className={`msg ${m.role}`}
               data-testid={m.role === 'user' ? 'user-message' : 'assistant-message'}
               data-streaming={m.role === 'assistant' ? String(!!m.streaming) : undefined}>
            <div className="bubble">{m.content || (m.streaming ? '\u2026' : '')}</div>
            {m.stats && <div className="stats muted small">{m.stats}</div>}
          </div>
        ))}
        <div ref={end} />
      </div>
      {error && <div className="banner" data-testid="chat-error">{error}</div>}
      <div className="composer">
        <textarea value={input} placeholder="Message (Enter sends, Shift+Enter: new line)" data-testid="chat-input"
          onChange={(e) => setInput(e.target.value)}
          onKeyDown={(e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); void send(); } }} />
        {busy
          ? <button onClick={() => abort.current?.abort()} data-testid="chat-stop">Stop</button>
          : <button onClick={() => void send()} disabled={!input.trim()} data-testid="chat-send">Send</button>}
      </div>
    </main>
  );
}
