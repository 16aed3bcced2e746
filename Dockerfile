# syntax=docker/dockerfile:1

# Fido Transactions API: build dist/ (esbuild, scripts/build.mjs), run it as an unprivileged user.
# Node's official images carry full ICU data, which the service needs for currency minor units.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY scripts ./scripts
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=8000
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# Migrations are applied at start-up; db.ts resolves them relative to dist/ (../../drizzle).
COPY drizzle ./drizzle
# Only used when no DATABASE_URL is set (embedded PGlite); writable by the runtime user.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 8000
# Slim images have no curl: Node's own fetch probes liveness.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8000)+'/healthz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"]
# node directly, not `npm start` (npm in between): PID 1 gets SIGTERM and shuts down cleanly.
CMD ["node", "dist/server.js"]
