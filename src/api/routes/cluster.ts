/**
 * nftfarm's own routes for running several nodes (issue 12), under the ZAPI base and in its
 * envelopes: BGP settings with their live state, and the declarative configuration document.
 * Both PUTs validate everything first and answer one 400 naming every problem; nothing is
 * stored unless all of it is valid.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { bgpToJson, mergeBgp, ASN_MAX, MAX_COMMUNITIES, MAX_NEIGHBORS } from '../../cluster/bgp-settings.js';
import type { BgpStatus } from '../../cluster/bgp-speaker.js';
import { documentDigest, exportDocument, DOCUMENT_FORMAT } from '../../config-doc/document.js';
import { hostProblems, parseDocument } from '../../config-doc/validate.js';
import { applyDocument, ApplyRefused, planDocument } from '../../config-doc/apply.js';
import { badRequestAll, zapiRoute } from '../zapi.js';
import { successEnvelope } from '../schemas.js';

type BodyRequest = FastifyRequest<{ Body: unknown; Querystring: { dry_run?: string } }>;

/** What GET /system/bgp reads live (the BGP speaker); without it only the settings are shown. */
export interface BgpStatusSource {
  status(): Promise<BgpStatus>;
}

const str = { type: 'string' } as const;
const ipv4 = { type: 'string', format: 'ipv4' } as const;
const asn = { anyOf: [{ type: 'integer', minimum: 1, maximum: ASN_MAX }, { type: 'string', pattern: '^[0-9]{1,10}$' }] };
const bool = { anyOf: [{ type: 'boolean' }, { type: 'string', enum: ['true', 'false'] }] };
const neighbor = {
  type: 'object',
  required: ['address', 'asn'],
  additionalProperties: false,
  properties: { address: ipv4, asn },
};

const bgpFields = {
  enabled: { ...bool, description: 'Announce the VIPs by BGP through BIRD (and stop answering ARP for them).' },
  speaker: {
    type: 'string',
    enum: ['bird', 'external'],
    description: "'bird' (default): nftfarm runs BIRD and peers with the neighbours. 'external': no BIRD; your own BGP daemon learns the VIPs to announce from kernel routing table 222 (kept in both modes).",
  },
  asn: { anyOf: [...asn.anyOf, { type: 'null' }], description: "This node's AS number (1-4294967294); required to enable." },
  hold_time: {
    anyOf: [{ type: 'integer', minimum: 0, maximum: 65535 }, { type: 'string', pattern: '^[0-9]{1,5}$' }],
    description: 'BGP hold time in seconds: 0 (no keepalives) or 3-65535 (default 90). A node that dies silently leaves the routers after it.',
  },
  neighbors: { type: 'array', maxItems: MAX_NEIGHBORS, items: neighbor, description: 'The routers to announce the VIPs to (replaces the list).' },
  drain_time: {
    anyOf: [{ type: 'integer', minimum: 0, maximum: 3600 }, { type: 'string', pattern: '^[0-9]{1,4}$' }],
    description: 'Seconds nftfarm keeps running (and forwarding) after withdrawing its VIPs on SIGTERM (default 5).',
  },
  med: { anyOf: [{ type: 'integer', minimum: 0, maximum: 4294967295 }, { type: 'null' }], description: 'MED sent with every VIP (null: none). Must be the same on every node.' },
  communities: { type: 'array', maxItems: MAX_COMMUNITIES, items: { type: 'string', pattern: '^[0-9]{1,5}:[0-9]{1,5}$' }, description: 'Standard communities sent with every VIP.' },
  graceful_restart: { ...bool, description: 'BGP graceful restart (default false: a dead node leaves the routers when its hold time expires).' },
};

const bgpInputSchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: { ...bgpFields, router_id: { anyOf: [ipv4, { type: 'null' }, { type: 'string', enum: [''] }], description: "Node-specific (not in GET /system/config); null: this node's address toward its first neighbour." } },
};

const bgpView = {
  type: 'object',
  required: ['enabled', 'speaker', 'asn', 'router_id', 'hold_time', 'neighbors', 'drain_time', 'med', 'communities', 'graceful_restart', 'status'],
  properties: {
    enabled: { type: 'boolean' },
    speaker: { type: 'string', enum: ['bird', 'external'] },
    asn: { type: 'integer', nullable: true },
    router_id: { type: 'string', nullable: true },
    hold_time: { type: 'integer' },
    neighbors: { type: 'array', items: { type: 'object', required: ['address', 'asn'], properties: { address: str, asn: { type: 'integer' } } } },
    drain_time: { type: 'integer' },
    med: { type: 'integer', nullable: true },
    communities: { type: 'array', items: str },
    graceful_restart: { type: 'boolean' },
    status: {
      type: 'object',
      required: ['speaker', 'running', 'router_id_in_effect', 'neighbors', 'announced', 'wanted', 'withdrawn_for_shutdown', 'last_error'],
      properties: {
        speaker: { type: 'string', enum: ['bird', 'external', 'off', 'dry-run'] },
        running: { type: 'boolean', description: 'BIRD runs as a child of nftfarm.' },
        router_id_in_effect: { type: 'string', nullable: true },
        neighbors: {
          type: 'array',
          items: {
            type: 'object',
            required: ['address', 'asn', 'state', 'info', 'since'],
            properties: {
              address: str,
              asn: { type: 'integer' },
              state: { type: 'string', description: "The BGP session state as BIRD reports it: 'Established', 'Active', 'Connect', 'Idle'... ('unknown' while BIRD does not run)." },
              info: str,
              since: { type: 'string', nullable: true },
            },
          },
        },
        announced: { type: 'array', items: str, description: 'The /32 prefixes BIRD announces now.' },
        wanted: { type: 'array', items: str, description: 'The prefixes nftfarm asked BIRD to announce (VIPs with a farm applied in the kernel and a backend that can take new flows).' },
        withdrawn_for_shutdown: { type: 'boolean' },
        last_error: { type: 'string', nullable: true },
      },
    },
  },
};

const backendDoc = {
  type: 'object',
  required: ['ip'],
  additionalProperties: false,
  properties: {
    ip: ipv4,
    port: { type: 'integer', minimum: 1, maximum: 65535, nullable: true },
    weight: { type: 'integer', minimum: 1, maximum: 9 },
    priority: { type: 'integer', minimum: 1, maximum: 9 },
    max_conns: { type: 'integer', minimum: 0 },
    maintenance: { type: 'string', enum: ['none', 'drain', 'cut'] },
  },
};
const farmDoc = {
  type: 'object',
  required: ['farmname', 'vip', 'vport'],
  additionalProperties: false,
  properties: {
    farmname: { type: 'string', pattern: '^[a-zA-Z0-9-]+$' },
    vip: ipv4,
    vport: str,
    protocol: str,
    nattype: str,
    algorithm: str,
    persistence: str,
    ttl: { type: 'integer', minimum: 1 },
    running: { type: 'boolean' },
    farmguardian: { type: 'string', nullable: true },
    backends: { type: 'array', items: backendDoc },
  },
};
const checkDoc = {
  type: 'object',
  required: ['name', 'command'],
  additionalProperties: false,
  properties: {
    name: str,
    template: { type: 'boolean' },
    description: str,
    command: str,
    interval: { type: 'integer' },
    timeout: { type: 'integer' },
    fall: { type: 'integer' },
    rise: { type: 'integer' },
    cut_conns: { type: 'boolean' },
    log: { type: 'boolean' },
    backend_alias: { type: 'boolean' },
  },
};
const documentSchema = {
  type: 'object',
  required: ['format', 'farms', 'health_checks', 'bgp'],
  additionalProperties: false,
  description: 'The whole configuration, free of local ids, in a stable order (same configuration, same bytes). The router id is not in it.',
  properties: {
    format: { type: 'string', enum: [DOCUMENT_FORMAT] },
    farms: { type: 'array', items: farmDoc },
    health_checks: { type: 'array', items: checkDoc },
    bgp: { type: 'object', additionalProperties: false, properties: bgpFields },
  },
};
/** The document itself, or the whole answer of GET /system/config (so `GET | PUT` works). */
const documentInput = {
  anyOf: [documentSchema, { type: 'object', required: ['params'], properties: { description: str, params: documentSchema, digest: str } }],
};
const planEntry = { type: 'object', required: ['kind', 'name'], properties: { kind: str, name: str, fields: { type: 'array', items: str } } };
const planSchema = {
  type: 'object',
  required: ['create', 'change', 'delete'],
  properties: { create: { type: 'array', items: planEntry }, change: { type: 'array', items: planEntry }, delete: { type: 'array', items: planEntry } },
};

export async function clusterRoutes(app: FastifyInstance, options: { bgp?: BgpStatusSource }): Promise<void> {
  const { store } = app.deps;
  const bgpStatus = async (): Promise<BgpStatus> =>
    options.bgp
      ? options.bgp.status()
      : {
          ...(bgpToJson(store.bgpSettings(), true) as Omit<BgpStatus, 'status'>),
          status: { speaker: 'off', running: false, router_id_in_effect: null, neighbors: [], announced: [], wanted: [], withdrawn_for_shutdown: false, last_error: null },
        };

  zapiRoute(app, {
    method: 'GET',
    url: '/system/bgp',
    operationId: 'getBgp',
    summary: 'BGP settings (nftfarm, not ZAPI) with the live state: each neighbour session and the prefixes announced now',
    tags: ['cluster'],
    description: () => 'BGP settings',
    response: { 200: successEnvelope(bgpView) },
    handler: async () => ({ description: 'BGP settings', params: await bgpStatus() }),
  });

  zapiRoute<BodyRequest>(app, {
    method: 'PUT',
    url: '/system/bgp',
    operationId: 'setBgp',
    summary: 'Change the BGP settings (fields left out keep their value; neighbors and communities replace the lists)',
    tags: ['cluster'],
    description: () => 'Modify BGP settings',
    jsonBody: bgpInputSchema,
    response: { 200: successEnvelope(bgpView, {}, ['message']) },
    handler: async (req) => {
      if (req.body === undefined || (typeof req.body === 'object' && req.body !== null && Object.keys(req.body).length === 0)) {
        throw badRequestAll([`No parameter has been sent. Please, try with: '${Object.keys(bgpInputSchema.properties).join("', '")}'`]);
      }
      store.write((generation) => {
        const merged = mergeBgp(store.bgpSettings(), req.body);
        if (!merged.settings) throw badRequestAll(merged.problems);
        store.saveBgpSettings(merged.settings, generation);
      });
      return { description: 'Modify BGP settings', params: await bgpStatus(), message: 'The BGP settings have been changed.' };
    },
  });

  zapiRoute(app, {
    method: 'GET',
    url: '/system/config',
    operationId: 'exportConfig',
    summary: 'The whole configuration as one document (nftfarm, not ZAPI): PUT it to another node to make it identical',
    tags: ['cluster'],
    description: () => 'Configuration',
    response: { 200: successEnvelope(documentSchema, { digest: { type: 'string', description: 'config_digest of this document.' } }, ['digest']) },
    handler: async () => {
      const doc = exportDocument(store);
      return { description: 'Configuration', params: doc, digest: documentDigest(doc) };
    },
  });

  zapiRoute<BodyRequest>(app, {
    method: 'PUT',
    url: '/system/config',
    operationId: 'applyConfig',
    summary: 'Make the configuration equal a document (create, change, delete in one transaction); ?dry_run=true answers the plan only',
    tags: ['cluster'],
    description: () => 'Apply configuration',
    querystring: { type: 'object', additionalProperties: false, properties: { dry_run: { type: 'string', enum: ['true', 'false'] } } },
    jsonBody: documentInput,
    response: {
      200: successEnvelope(
        {
          type: 'object',
          required: ['dry_run', 'plan', 'digest'],
          properties: { dry_run: { type: 'boolean' }, plan: planSchema, digest: { type: 'string', description: 'config_digest after the change (or now, on a dry run).' } },
        },
        {},
        ['message'],
      ),
    },
    handler: async (req) => {
      if (req.body === undefined) throw badRequestAll(['No configuration has been sent: send the document of GET /system/config.']);
      const parsed = parseDocument(req.body);
      if (!parsed.doc) throw badRequestAll(parsed.problems);
      const doc = parsed.doc;
      const hostIssues = await hostProblems(doc, (ips) => app.deps.host.connectedNetworks(ips));
      if (hostIssues.length > 0) throw badRequestAll(hostIssues);
      const dryRun = req.query.dry_run === 'true';
      let plan;
      try {
        if (dryRun) {
          const planned = planDocument(store, doc);
          if (planned.problems.length > 0) throw new ApplyRefused(planned.problems);
          plan = planned.plan;
        } else plan = applyDocument(store, doc);
      } catch (err) {
        if (err instanceof ApplyRefused) throw badRequestAll(err.problems);
        throw err;
      }
      const count = plan.create.length + plan.change.length + plan.delete.length;
      return {
        description: 'Apply configuration',
        params: { dry_run: dryRun, plan, digest: documentDigest(exportDocument(store)) },
        message: dryRun
          ? `Dry run: ${count} change${count === 1 ? '' : 's'} would be made; nothing was changed.`
          : count === 0
            ? 'The configuration already equals the document: nothing was changed.'
            : `The configuration now equals the document (${count} change${count === 1 ? '' : 's'}).`,
      };
    },
  });
}
