// Vite build of the swisd dashboard: output in dist/, served by swisd-gateway (--web).
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  base: '/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 400 },
  // `npm run dev` against a running gateway: SWISD_GATEWAY=http://127.0.0.1:8080 npm run dev
  server: {
    proxy: Object.fromEntries(['/v1', '/api', '/metrics'].map((p) => [p, process.env.SWISD_GATEWAY ?? 'http://127.0.0.1:8080'])),
  },
});
