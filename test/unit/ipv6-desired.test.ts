// IPv6 farms in the desired state (issue 13): BGP announces IPv4 VIPs only, so an IPv6 VIP
// keeps its proxy NDP announcement when BGP is on, and one outside the connected networks
// does not take the backends' interface.
import t from 'tap';
import { desiredState } from '../../src/reconcile/desired.js';
import { sortVips } from '../../src/cluster/vips.js';
import { backend, facts, farm, snapshot } from '../helpers/fixtures.js';

t.test('with BGP on, IPv4 VIPs are routed and IPv6 VIPs stay announced by proxy NDP', async (t) => {
  const snap = {
    ...snapshot([
      { farm: farm(1, { name: 'v4', vip: '10.250.0.100' }), backends: [backend(1, 1, 0, '10.250.0.21')] },
      { farm: farm(2, { name: 'v6', vip: 'fd00:250::100' }), backends: [backend(2, 2, 0, 'fd00:250::21')] },
      { farm: farm(3, { name: 'v6out', vip: '2001:db8:9::1' }), backends: [backend(3, 3, 0, 'fd00:250::22')] },
    ]),
    routedVips: true,
  };
  const state = desiredState(snap, facts());
  const [v4, v6, out] = state.farms;
  t.equal(v4!.proxied, false, 'the IPv4 VIP is announced by BGP');
  t.equal(v6!.proxied, true, 'the IPv6 VIP keeps proxy NDP');
  t.same(state.announcements.map((a) => a.vip), ['fd00:250::100']);
  t.equal(out!.iface, null, 'an IPv6 VIP outside the connected networks takes no interface');
  t.match(out!.problem, /no up interface has a network holding the VIP 2001:db8:9::1/);
});

t.test('VIPs sort IPv4 numerically, then IPv6', async (t) => {
  t.same(sortVips(['fd00::2', '10.0.0.10', 'fd00::1', '10.0.0.9']), ['10.0.0.9', '10.0.0.10', 'fd00::1', 'fd00::2']);
});
