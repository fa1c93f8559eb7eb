# syntax=docker/dockerfile:1
#
# The framework's image. Node 24 runs the TypeScript sources directly (type stripping), so there is no compile
# step: the first stage installs the production dependencies, the second adds the sources and runs as `node`.
#
#   docker build -t sfm-streams .
#   docker run --rm -e KAFKA_BROKERS=… -e DATABASE_URL=… sfm-streams            # the memory topology
#   docker run --rm -e KAFKA_BROKERS=… sfm-streams npm run topics -- apply       # any other command
ARG NODE_IMAGE=node:24-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev: no test, lint or type-check tooling in the image, and no `node` package (the pinned Node 24 runtime
# for developers, a development dependency): `npm run …` uses the image's own Node 24.
# --ignore-scripts: no production dependency needs an install script.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and not writable by the `node` user that runs the process: the code cannot be changed at run time.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY src ./src
COPY topologies ./topologies
COPY schemas ./schemas
USER node
# Prometheus metrics (GET /metrics), served only when --metrics-port is given.
EXPOSE 9464
CMD ["node", "src/cli/start.ts", "topologies/memory.ts", "--metrics-port", "9464", "--metrics-host", "0.0.0.0"]
