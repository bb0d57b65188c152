# syntax=docker/dockerfile:1
# Multi-stage: compile TypeScript with dev dependencies, ship only dist/ and production dependencies.
# Node 26, the Active LTS line (Node 20 reached end of life on 2026-04-30); README "Requirements" lists what is
# supported, and test/dockerfile.test.ts checks this major against it.

FROM node:26-trixie-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:26-trixie-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
# The image's own non-root user (uid 1000).
USER node
EXPOSE 8080 9901
# `ballast health` reads the admin address from the config (0.0.0.0 or :: is asked on loopback) and GETs /ready:
# healthy means bound, first health checks done and not draining. It reads the default config path: mount yours
# there (-v ./my.yaml:/app/config/ballast.yaml:ro), or override HEALTHCHECK if you pass another --config.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "dist/cli.js", "health", "--config", "/app/config/ballast.yaml"]
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["--config", "/app/config/ballast.yaml"]
