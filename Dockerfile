# nftfarm appliance image. Run it with the host's network and NET_ADMIN, e.g.:
#   docker run -d --name nftfarm --network host --cap-add NET_ADMIN \
#     -v nftfarm-data:/var/lib/nftfarm nftfarm
# The API key is generated on first start in /var/lib/nftfarm/api-key (or set NFTFARM_API_KEY).

FROM node:24-bookworm-slim AS build
# better-sqlite3 and netlink are native modules that ship prebuilt binaries; npm still runs
# node-gyp for better-sqlite3 (it builds nothing when a prebuilt one fits): python3 and make,
# and g++ for a platform without one.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/nftfarm
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY bin ./bin
COPY migrations ./migrations
# npm ci compiles the appliance's TypeScript (prepare: src/ into dist/); the dev dependencies go
# afterwards. The network-namespace lab of the tests, the bench and the demo (lab/) is not copied.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables iproute2 conntrack iputils-ping bird2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/nftfarm
COPY --from=build /opt/nftfarm/package.json ./
COPY --from=build /opt/nftfarm/node_modules ./node_modules
COPY --from=build /opt/nftfarm/dist ./dist
COPY --from=build /opt/nftfarm/bin ./bin
COPY --from=build /opt/nftfarm/migrations ./migrations
COPY openapi ./openapi
ENV NFTFARM_DB=/var/lib/nftfarm/nftfarm.db \
    NFTFARM_LISTEN=0.0.0.0:4444 \
    NODE_ENV=production
VOLUME ["/var/lib/nftfarm"]
EXPOSE 4444
ENTRYPOINT ["node", "bin/nftfarm"]
CMD ["serve"]
