// App.tsx: the top bar and the two views, chosen by the URL hash (#/ and #/chat).
import { useEffect, useState } from 'react';
import { Chat } from './Chat';
import { Dashboard } from './Dashboard';

const route = () => (window.location.hash.startsWith('#/chat') ? 'chat' : 'dashboard');

export function App() {
  const [view, setView] = useState(route);
  useEffect(() => {
    const f = () => setView(route());
    window.addEventListener('hashchange', f);
    return () => window.removeEventListener('hashchange', f);
  }, []);
  return (
    <>
      <header>
        <span className="logo">swisd</span>
        <span className="muted small">swarm inference on small devices</span>
        <nav>
          <a href="#/" className={view === 'dashboard' ? 'active' : ''} data-testid="nav-dashboard">Dashboard</a>
          <a href="#/chat" className={view === 'chat' ? 'active' : ''} data-testid="nav-chat">Chat</a>
        </nav>
      </header>
      {/* both stay mounted: the dashboard keeps polling (its throughput series) while the chat is shown */}
      <div hidden={view !== 'dashboard'}><Dashboard /></div>
      <div hidden={view !== 'chat'}><Chat /></div>
    </>
  );
}
