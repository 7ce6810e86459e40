/**
 * A write that depends on the host's networks: the lookup is async (netlink), the write is
 * one synchronous store transaction. Between the two another request may commit (delete and
 * re-create the farm, change its VIP or backends), so the transaction re-reads everything it
 * checks and writes, and when that is not what the lookup covered (StaleNetworkCheck from
 * checkFarmRules) the lookup and the transaction run again.
 */
import type { FastifyInstance } from 'fastify';
import { checkNetwork, StaleNetworkCheck, type NetworkCheck } from './farm-service.js';
import { ZapiError } from './zapi.js';

const ATTEMPTS = 5;

export interface Addresses {
  vip: string;
  ips: string[];
}

/**
 * `addresses` reads (outside the transaction) what to look up; `write` runs inside
 * `store.write`, re-resolves the farm by name, checks and writes.
 */
export async function checkedWrite<T>(
  app: FastifyInstance,
  addresses: () => Addresses,
  write: (network: NetworkCheck, generation: number) => T,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const { vip, ips } = addresses();
    const network = await checkNetwork(app, vip, ips);
    try {
      return app.deps.store.write((generation) => write(network, generation));
    } catch (err) {
      if (!(err instanceof StaleNetworkCheck)) throw err;
      if (attempt === ATTEMPTS) throw new ZapiError(409, 'The farm kept changing while this request was checked; send it again.');
    }
  }
}
