# Sluice gateway image: `docker build -t sluice .` then
#   docker run -p 8080:8080 -v $PWD/sluice.yaml:/etc/sluice/sluice.yaml:ro sluice
# Three stages: the TypeScript build (dev dependencies), the production dependencies (native addons
# compiled here), and a slim runtime with neither compilers nor dev dependencies, run as the non-root
# `node` user. The build is what runs (bin/sluice.js prefers dist/; the image ships no src/).

FROM node:20-slim AS build
WORKDIR /app
# better-sqlite3 and usearch build from source when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci
COPY src ./src
RUN npm run build

FROM node:20-slim AS deps
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# `prepare` (the TypeScript build) needs the dev dependencies; the build stage already made dist/.
RUN npm ci --omit=dev \
 && npm cache clean --force

FROM node:20-slim AS runtime
ENV NODE_ENV=production
# glibc gives each thread that allocates (V8's helper threads, the ledger's writer, libuv's pool) its own
# malloc arena, and an arena keeps what it once held: two arenas measured 6-11 MiB less RSS idle and at
# saturation for the governed benchmark config, at the same CPU per request (BENCHMARKS.md, "Two malloc arenas").
ENV MALLOC_ARENA_MAX=2
WORKDIR /app
COPY --from=deps --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --chown=node:node package.json ./
COPY --chown=node:node bin ./bin
COPY --chown=node:node dashboard ./dashboard
COPY --chown=node:node examples/sluice.example.yaml ./examples/sluice.example.yaml
# The SQLite ledger and the crash journal default to .sluice/ under the working directory.
RUN mkdir -p /app/.sluice /etc/sluice && chown node:node /app/.sluice
USER node
EXPOSE 8080 8081
# /healthz answers while the process serves (liveness); /readyz also checks the stores (readiness).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/sluice.js"]
CMD ["start", "--config", "/etc/sluice/sluice.yaml"]
