import { createRoot } from 'react-dom/client';
import { config as zodConfig } from 'zod/v4/core';
import { App } from './app';
import './styles.css';

// The AI SDK checks stream parts with zod, whose fast path compiles code with `new Function`: the
// page's CSP (no 'unsafe-eval') refuses it, and reports every try. zod works without it.
zodConfig({ jitless: true });

createRoot(document.getElementById('root')!).render(<App />);
