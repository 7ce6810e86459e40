import t from 'tap';
import { isSinglePort, normalizeRanges, parseVport, portSpecsOverlap, PORT_PATTERN, VPORT_PATTERN } from '../../src/model/ports.js';

t.test('parseVport reads *, ports, lists and ranges', async (t) => {
  t.strictSame(parseVport('*'), { any: true });
  t.strictSame(parseVport('80'), { any: false, ranges: [{ low: 80, high: 80 }] });
  t.strictSame(parseVport('1'), { any: false, ranges: [{ low: 1, high: 1 }] });
  t.strictSame(parseVport('65535'), { any: false, ranges: [{ low: 65535, high: 65535 }] });
  t.strictSame(parseVport('80,443'), { any: false, ranges: [{ low: 80, high: 80 }, { low: 443, high: 443 }] });
  t.strictSame(parseVport('8000:8080,22'), { any: false, ranges: [{ low: 8000, high: 8080 }, { low: 22, high: 22 }] });
  t.strictSame(parseVport('5:5'), { any: false, ranges: [{ low: 5, high: 5 }] });
});

t.test('parseVport refuses bad grammar and reversed ranges', async (t) => {
  for (const text of ['', '0', '65536', '99999', '080', '-1', '+80', '80-90', '80,', ',80', '80,,90', '80:', ':80', '1:2:3', '*,80', '**', ' 80', '80 ', 'abc', '8O', '90:80', '1,3:2', '1e3', '0x50']) {
    t.equal(parseVport(text), null, JSON.stringify(text));
  }
});

t.test('the patterns are the same grammar', async (t) => {
  const port = new RegExp(`^${PORT_PATTERN}$`);
  for (let p = 1; p <= 65535; p++) if (!port.test(String(p))) t.fail(`port ${p} refused`);
  for (const bad of ['0', '65536', '070', '100000', '']) t.notOk(port.test(bad), bad);
  const vport = new RegExp(VPORT_PATTERN);
  t.ok(vport.test('90:80'), 'the schema grammar lets a reversed range through; parseVport refuses it');
  t.notOk(vport.test('80-90'));
});

t.test('normalizeRanges sorts and merges overlapping and adjacent ranges', async (t) => {
  t.strictSame(normalizeRanges([]), []);
  t.strictSame(
    normalizeRanges([
      { low: 443, high: 443 },
      { low: 80, high: 80 },
      { low: 81, high: 90 },
      { low: 85, high: 100 },
      { low: 200, high: 300 },
      { low: 102, high: 110 },
    ]),
    [
      { low: 80, high: 100 },
      { low: 102, high: 110 },
      { low: 200, high: 300 },
      { low: 443, high: 443 },
    ],
  );
  const input = [{ low: 5, high: 9 }, { low: 1, high: 6 }];
  normalizeRanges(input);
  t.strictSame(input, [{ low: 5, high: 9 }, { low: 1, high: 6 }], 'the input is not modified');
});

t.test('portSpecsOverlap returns the first shared range, any, or null', async (t) => {
  const p = (text: string) => parseVport(text)!;
  t.equal(portSpecsOverlap(p('*'), p('80')), 'any');
  t.equal(portSpecsOverlap(p('80'), p('*')), 'any');
  t.equal(portSpecsOverlap(p('*'), p('*')), 'any');
  t.strictSame(portSpecsOverlap(p('80'), p('80')), { low: 80, high: 80 });
  t.strictSame(portSpecsOverlap(p('70:90'), p('80')), { low: 80, high: 80 });
  t.strictSame(portSpecsOverlap(p('70:90'), p('85:100')), { low: 85, high: 90 });
  t.strictSame(portSpecsOverlap(p('22,443'), p('400:500,22')), { low: 22, high: 22 });
  t.strictSame(portSpecsOverlap(p('100'), p('1:100')), { low: 100, high: 100 }, 'inclusive bounds');
  t.equal(portSpecsOverlap(p('80'), p('81')), null);
  t.equal(portSpecsOverlap(p('1:79,81:100'), p('80')), null);
});

t.test('isSinglePort', async (t) => {
  t.ok(isSinglePort(parseVport('80')!, 80));
  t.ok(isSinglePort(parseVport('80:80')!, 80));
  t.notOk(isSinglePort(parseVport('80')!, 81));
  t.notOk(isSinglePort(parseVport('80,81')!, 80));
  t.notOk(isSinglePort(parseVport('80:81')!, 80));
  t.notOk(isSinglePort(parseVport('*')!, 80));
});
