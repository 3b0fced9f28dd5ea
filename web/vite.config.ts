import { defineConfig } from "vite";

// `make web` builds into web/dist, which the gateway serves at /. `npm run dev`
// serves the page from Vite and sends the API to a mesh started by `make run`.
export default defineConfig({
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 400 },
  server: {
    proxy: {
      "^/wizdata\\.": { target: "http://127.0.0.1:8080" },
    },
  },
});
