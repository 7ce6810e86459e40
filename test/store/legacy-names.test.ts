// Issue 11, finding 2: farms named before the 64-character limit are renamed at start, so
// that they can be addressed (and rendered) again.
import t from 'tap';
import { openDatabase } from '../../src/store/db.js';
import { Store } from '../../src/store/store.js';
import { shortenLongFarmNames } from '../../src/store/legacy-names.js';

const farm = (name: string) => ({ name, vip: '10.250.0.10', vport: '80', protocol: 'tcp', nattype: 'nat', algorithm: 'weight', persistence: '', ttl: 60, running: true }) as const;

t.test('names over 64 characters become <start>-<id>; shorter ones are left alone', async (t) => {
  const store = new Store(openDatabase(':memory:'));
  t.teardown(() => store.close());
  const long = 'x'.repeat(112);
  const ids = store.write((g) => [store.insertFarm(farm(long), g).id, store.insertFarm(farm('y'.repeat(1000)), g).id, store.insertFarm(farm('z'.repeat(64)), g).id]);
  // The first choice is taken: the next one is used.
  store.write((g) => store.insertFarm(farm(`${'x'.repeat(64 - `-${ids[0]}`.length)}-${ids[0]}`), g));
  const before = store.generation();
  const renames = shortenLongFarmNames(store);
  t.equal(renames.length, 2);
  t.equal(store.generation(), before + 1, 'one write');
  for (const { from, to } of renames) {
    t.ok(to.length <= 64, `${to.length} characters`);
    t.ok(from.startsWith(to.slice(0, 40)), 'keeps the start of the name');
    t.ok(store.getFarm(to), 'the farm has its new name');
  }
  t.equal(renames[0]?.to, `${'x'.repeat(64 - `-${ids[0]}-1`.length)}-${ids[0]}-1`, 'a taken name is skipped');
  t.ok(store.getFarm('z'.repeat(64)), '64 characters stay');
  t.same(shortenLongFarmNames(store), [], 'nothing left to rename');
});
