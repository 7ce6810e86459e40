// Health checks ("farmguardian"): templates, create, copy, modify, delete, and linking to farms.
import t from 'tap';
import { buildTestApp, call, createFarm, zapiError } from '../helpers/api.js';

const template = (name: string, description: string, command: string, cutConns: 'true' | 'false') => ({
  name,
  description,
  command,
  farms: [],
  log: 'false',
  interval: 15,
  timeout: 15,
  fall: 1,
  rise: 1,
  cut_conns: cutConns,
  template: 'true',
  backend_alias: 'false',
});

const TEMPLATES = [
  template('check_http', 'Send HTTP request to backend and expect a 200 OK response with a timeout of 5 secs.', 'check_http -I HOST -p PORT -e 200 -t 5', 'false'),
  template('check_ping', 'Send 2 ICMP packets and check that the 100% reaches the host.', 'check_ping -H HOST -w 2,100% -c 2,100% -p 2', 'true'),
  template('check_tcp', 'Send TCP connection to backend', 'check_tcp -H HOST -p PORT', 'false'),
  template('check_udp', 'Send UDP connection to backend and check if port is opened.', 'check_udp -H HOST -p PORT', 'true'),
];

t.test('the four built-in templates are listed and shown', async (t) => {
  const { app } = await buildTestApp(t);
  const list = await call(app, 'GET', '/monitoring/fg');
  t.equal(list.status, 200);
  t.strictSame(list.body, { description: 'List farm guardian checks and templates', params: TEMPLATES });
  const one = await call(app, 'GET', '/monitoring/fg/check_tcp');
  t.equal(one.status, 200);
  t.strictSame(one.body, { description: "Retrive the farm guardian 'check_tcp'", params: TEMPLATES[2] });
  const missing = await call(app, 'GET', '/monitoring/fg/nope');
  t.equal(missing.status, 404);
  t.strictSame(missing.body, zapiError("Retrive the farm guardian 'nope'", "The farm guardian 'nope' has not been found."));
});

t.test('create a check from scratch', async (t) => {
  const { app } = await buildTestApp(t);
  const res = await call(app, 'POST', '/monitoring/fg', {
    name: 'my_check-1',
    description: 'HTTP on /health',
    command: 'check_http -I HOST -p PORT -u /health',
    interval: '10',
    timeout: '5',
    log: 'true',
    cut_conns: true,
    backend_alias: 'false',
  });
  t.equal(res.status, 200);
  const expected = {
    name: 'my_check-1',
    description: 'HTTP on /health',
    command: 'check_http -I HOST -p PORT -u /health',
    farms: [],
    log: 'true',
    interval: 10,
    timeout: 5,
    fall: 1,
    rise: 1,
    cut_conns: 'true',
    template: 'false',
    backend_alias: 'false',
  };
  t.strictSame(res.body, {
    description: "Create a farm guardian 'my_check-1'",
    params: expected,
    message: "The farm guardian 'my_check-1' has been created successfully.",
  });
  t.strictSame((await call(app, 'GET', '/monitoring/fg/my_check-1')).body.params, expected);
  t.equal((await call(app, 'GET', '/monitoring/fg')).body.params.length, 5);

  const minimal = await call(app, 'POST', '/monitoring/fg', { name: 'minimal', command: 'check_tcp -H HOST -p PORT' });
  t.equal(minimal.status, 200);
  t.strictSame(minimal.body.params, {
    name: 'minimal',
    description: '',
    command: 'check_tcp -H HOST -p PORT',
    farms: [],
    log: 'false',
    interval: 10,
    timeout: 10,
    fall: 1,
    rise: 1,
    cut_conns: 'false',
    template: 'false',
    backend_alias: 'false',
  });

  const cases: [unknown, string][] = [
    [{ name: 'my_check-1', command: 'x' }, "The farm guardian 'my_check-1' already exists."],
    [{ name: 'check_tcp', command: 'x' }, "The farm guardian 'check_tcp' already exists."],
    [{ name: 'nocommand' }, "The required parameter 'command' is missing."],
    [{ name: 'badtiming', command: 'check_tcp -H HOST -p PORT', interval: 5, timeout: 6 }, 'The timeout (6 s) cannot be greater than the interval (5 s).'],
    [{ name: '0', command: 'x' }, "The value '0' is not valid for the parameter 'name'."],
    [{ name: 'x', command: '   ' }, "The value '   ' is not valid for the parameter 'command'."],
    [{ name: 'x', command: 'a\nb' }, "The value 'a\nb' is not valid for the parameter 'command'."],
  ];
  for (const [body, message] of cases) {
    const bad = await call(app, 'POST', '/monitoring/fg', body);
    t.equal(bad.status, 400, JSON.stringify(body));
    t.equal(bad.body.message, message, JSON.stringify(body));
  }
  t.equal((await call(app, 'GET', '/monitoring/fg')).body.params.length, 6, 'no refused check was created');
});

t.test('create a check with copy_from', async (t) => {
  const { app } = await buildTestApp(t);
  const fromTemplate = await call(app, 'POST', '/monitoring/fg', { name: 'web', copy_from: 'check_http', interval: 30 });
  t.equal(fromTemplate.status, 200);
  t.strictSame(fromTemplate.body.params, { ...TEMPLATES[0], name: 'web', interval: 30, template: 'false' }, 'a copy of a template is no template');

  await createFarm(app, 'f1');
  t.equal((await call(app, 'POST', '/farms/f1/fg', { name: 'web' })).status, 200);
  const fromUser = await call(app, 'POST', '/monitoring/fg', { name: 'web2', copy_from: 'web', description: 'second' });
  t.equal(fromUser.status, 200);
  t.strictSame(
    fromUser.body.params,
    { ...TEMPLATES[0], name: 'web2', description: 'second', interval: 30, template: 'false', farms: [] },
    'the copy is linked to no farm',
  );
  t.strictSame((await call(app, 'GET', '/monitoring/fg/web')).body.params.farms, ['f1']);

  const missing = await call(app, 'POST', '/monitoring/fg', { name: 'web3', copy_from: 'nope' });
  t.equal(missing.status, 400);
  t.strictSame(missing.body, zapiError("Create a farm guardian 'web3'", "The parent farm guardian 'nope' does not exist."));
});

t.test('modify: templates keep description and command; interval and the rest can change', async (t) => {
  const { app, store } = await buildTestApp(t);
  for (const body of [{ description: 'mine' }, { command: 'check_tcp -H HOST -p 22' }, { description: 'x', interval: 20 }]) {
    const res = await call(app, 'PUT', '/monitoring/fg/check_tcp', body);
    t.equal(res.status, 400, JSON.stringify(body));
    t.strictSame(res.body, zapiError("Modify farm guardian 'check_tcp'", "It is not allow to modify the parameters 'description' or 'command' in a template."));
  }
  t.equal(store.getHealthCheck('check_tcp')?.interval, 15, 'nothing changed');

  const res = await call(app, 'PUT', '/monitoring/fg/check_tcp', { interval: '30', log: 'true', cut_conns: 'true', timeout: 20 });
  t.equal(res.status, 200);
  t.strictSame(res.body, {
    description: "Modify farm guardian 'check_tcp'",
    params: { ...TEMPLATES[2], interval: 30, timeout: 20, log: 'true', cut_conns: 'true' },
    message: "Success, some parameters have been changed in farm guardian 'check_tcp'.",
  });
  t.equal(store.getHealthCheck('check_tcp')?.template, true, 'still a template');

  const timing = await call(app, 'PUT', '/monitoring/fg/check_tcp', { timeout: 31 });
  t.equal(timing.status, 400);
  t.equal(timing.body.message, 'The timeout (31 s) cannot be greater than the interval (30 s).');

  // A shorter interval alone takes the timeout down with it (ZEVENET: timeout defaults to interval).
  const shorter = await call(app, 'PUT', '/monitoring/fg/check_tcp', { interval: 5 });
  t.equal(shorter.status, 200);
  t.match(shorter.body.params, { interval: 5, timeout: 5 });
  const contradiction = await call(app, 'PUT', '/monitoring/fg/check_tcp', { interval: 4, timeout: 6 });
  t.equal(contradiction.status, 400, 'an explicit timeout above the interval is still refused');
  t.equal((await call(app, 'PUT', '/monitoring/fg/check_tcp', { interval: 30, timeout: 20 })).status, 200);

  t.equal((await call(app, 'POST', '/monitoring/fg', { name: 'mine', command: 'check_tcp -H HOST -p PORT', interval: 20, timeout: 10 })).status, 200);
  const user = await call(app, 'PUT', '/monitoring/fg/mine', { description: 'new text', command: 'check_tcp -H HOST -p PORT -t 3', interval: '10' });
  t.equal(user.status, 200);
  t.match(user.body.params, { description: 'new text', command: 'check_tcp -H HOST -p PORT -t 3', interval: 10, timeout: 10 });

  const missing = await call(app, 'PUT', '/monitoring/fg/nope', { interval: 10 });
  t.equal(missing.status, 404);
  t.strictSame(missing.body, zapiError("Modify farm guardian 'nope'", "The farm guardian 'nope' does not exist."));
});

t.test("'force' is needed to change the command of a check in use", async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await createFarm(app, 'f2', '81');
  t.equal((await call(app, 'POST', '/monitoring/fg', { name: 'mine', command: 'check_tcp -H HOST -p PORT' })).status, 200);
  t.equal((await call(app, 'POST', '/farms/f1/fg', { name: 'mine' })).status, 200);
  t.equal((await call(app, 'POST', '/farms/f2/fg', { name: 'mine' })).status, 200);
  for (const body of [{ command: 'check_tcp -H HOST -p 22' }, { backend_alias: 'true' }, { command: 'check_tcp -H HOST -p 23', force: 'false' }]) {
    const res = await call(app, 'PUT', '/monitoring/fg/mine', body);
    t.equal(res.status, 400, JSON.stringify(body));
    t.strictSame(res.body, zapiError("Modify farm guardian 'mine'", "Farm guardian 'mine' is running in: 'f1, f2'. To apply, send parameter 'force'"));
  }
  t.equal(store.getHealthCheck('mine')?.command, 'check_tcp -H HOST -p PORT');
  t.equal((await call(app, 'PUT', '/monitoring/fg/mine', { interval: 20 })).status, 200, 'other fields need no force');
  const forced = await call(app, 'PUT', '/monitoring/fg/mine', { command: 'check_tcp -H HOST -p 22', force: 'true' });
  t.equal(forced.status, 200);
  t.strictSame(forced.body.params.farms, ['f1', 'f2']);
  t.equal(store.getHealthCheck('mine')?.command, 'check_tcp -H HOST -p 22');
});

t.test('delete: refused while linked and for templates', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  t.equal((await call(app, 'POST', '/monitoring/fg', { name: 'mine', command: 'check_tcp -H HOST -p PORT' })).status, 200);
  t.equal((await call(app, 'POST', '/farms/f1/fg', { name: 'mine' })).status, 200);

  const linked = await call(app, 'DELETE', '/monitoring/fg/mine');
  t.equal(linked.status, 400);
  t.strictSame(linked.body, zapiError("Delete the farm guardian 'mine'", "It is not possible delete farm guardian 'mine' because it is running in: 'f1'"));
  t.ok(store.getHealthCheck('mine'));

  for (const name of ['check_tcp', 'check_http', 'check_udp', 'check_ping']) {
    const res = await call(app, 'DELETE', `/monitoring/fg/${name}`);
    t.equal(res.status, 400, name);
    t.strictSame(res.body, zapiError(`Delete the farm guardian '${name}'`, `The farm guardian '${name}' is a built-in template and cannot be deleted.`));
  }
  t.equal(store.listHealthChecks().length, 5);

  t.equal((await call(app, 'DELETE', '/farms/f1/fg/mine')).status, 200);
  const res = await call(app, 'DELETE', '/monitoring/fg/mine');
  t.equal(res.status, 200);
  t.strictSame(res.body, { description: "Delete the farm guardian 'mine'", message: 'mine has been deleted successfully.', success: 'true' });
  t.equal(store.getHealthCheck('mine'), undefined);

  const missing = await call(app, 'DELETE', '/monitoring/fg/mine');
  t.equal(missing.status, 404);
  t.strictSame(missing.body, zapiError("Delete the farm guardian 'mine'", 'The farm guardian mine does not exist'));
});

t.test('link and unlink a check; one check per farm', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'f1');
  const link = await call(app, 'POST', '/farms/f1/fg', { name: 'check_tcp' });
  t.equal(link.status, 200);
  t.strictSame(link.body, {
    description: "Add the farm guardian 'check_tcp' to the 'farm 'f1''",
    message: "Success, The farm guardian 'check_tcp' was added to the 'farm 'f1''",
    status: 'critical',
  });
  t.equal((await call(app, 'GET', '/farms/f1')).body.params.farmguardian, 'check_tcp');
  t.strictSame((await call(app, 'GET', '/monitoring/fg/check_tcp')).body.params.farms, ['f1']);

  const same = await call(app, 'POST', '/farms/f1/fg', { name: 'check_tcp' });
  t.equal(same.status, 400);
  t.strictSame(same.body, zapiError("Add the farm guardian 'check_tcp' to the 'farm 'f1''", "'check_tcp' is already applied in the 'farm 'f1''"));
  const second = await call(app, 'POST', '/farms/f1/fg', { name: 'check_http' });
  t.equal(second.status, 400);
  t.strictSame(second.body, zapiError("Add the farm guardian 'check_http' to the 'farm 'f1''", "The 'farm 'f1'' has already linked a farm guardian"));
  t.equal((await call(app, 'GET', '/farms/f1')).body.params.farmguardian, 'check_tcp');

  const noCheck = await call(app, 'POST', '/farms/f1/fg', { name: 'nope' });
  t.equal(noCheck.status, 404);
  t.strictSame(noCheck.body, zapiError("Add the farm guardian 'nope' to the 'farm 'f1''", "The farmguardian 'nope' does not exist"));
  const noFarm = await call(app, 'POST', '/farms/nope/fg', { name: 'check_tcp' });
  t.equal(noFarm.status, 404);
  t.strictSame(noFarm.body, zapiError("Add the farm guardian 'check_tcp' to the 'farm 'nope''", "The farm 'nope' does not exist"));

  const wrong = await call(app, 'DELETE', '/farms/f1/fg/check_http');
  t.equal(wrong.status, 400);
  t.strictSame(wrong.body, zapiError("Remove the farm guardian 'check_http' from the 'farm 'f1''", "The farm guardian 'check_http' is not applied to the 'farm 'f1''"));
  const unlink = await call(app, 'DELETE', '/farms/f1/fg/check_tcp');
  t.equal(unlink.status, 200);
  t.strictSame(unlink.body, {
    description: "Remove the farm guardian 'check_tcp' from the 'farm 'f1''",
    message: "Success, 'check_tcp' was removed from the 'farm 'f1''",
    status: 'critical',
    success: 'true',
  });
  t.equal((await call(app, 'GET', '/farms/f1')).body.params.farmguardian, null);
  t.strictSame((await call(app, 'GET', '/monitoring/fg/check_tcp')).body.params.farms, []);
  t.equal((await call(app, 'DELETE', '/farms/f1/fg/check_tcp')).status, 400, 'nothing linked any more');
  t.equal((await call(app, 'POST', '/farms/f1/fg', { name: 'check_http' })).status, 200, 'another check may be linked now');

  const unlinkNoFarm = await call(app, 'DELETE', '/farms/nope/fg/check_tcp');
  t.equal(unlinkNoFarm.status, 404);
  t.equal(unlinkNoFarm.body.message, "The farm 'nope' does not exist");
  const unlinkNoCheck = await call(app, 'DELETE', '/farms/f1/fg/nope');
  t.equal(unlinkNoCheck.status, 404);
  t.equal(unlinkNoCheck.body.message, "The farmguardian 'nope' does not exist");
});

t.test('a command that is not one of the native checks is refused with a 400 that says why', async (t) => {
  const { app, store } = await buildTestApp(t);
  const evil = 'check_tcp -H HOST -p PORT; rm -rf /';
  const res = await call(app, 'POST', '/monitoring/fg', { name: 'evil', command: evil });
  t.equal(res.status, 400);
  t.strictSame(
    res.body,
    zapiError(
      "Create a farm guardian 'evil'",
      `The command '${evil}' is not valid: it contains ';', which is shell syntax: nftfarm runs check_tcp, check_http, check_udp, check_ping natively and never runs a shell command.`,
    ),
  );
  t.equal(store.getHealthCheck('evil'), undefined, 'nothing stored');
  for (const command of ['nmap -sU -p PORT HOST | grep open', 'check_tcp -H 10.0.0.1 -p 80', 'check_http -I HOST -x']) {
    const bad = await call(app, 'POST', '/monitoring/fg', { name: 'bad', command });
    t.equal(bad.status, 400, command);
    t.match(bad.body.message, new RegExp(`^The command '.*' is not valid: .+\\.$`), command);
  }
  t.equal((await call(app, 'POST', '/monitoring/fg', { name: 'mine', command: 'check_tcp -H HOST -p PORT' })).status, 200);
  const modified = await call(app, 'PUT', '/monitoring/fg/mine', { command: 'check_tcp -H HOST -p PORT && reboot' });
  t.equal(modified.status, 400);
  t.match(modified.body, { error: 'true', message: /^The command 'check_tcp -H HOST -p PORT && reboot' is not valid: it contains '&'/ });
  t.equal(store.getHealthCheck('mine')?.command, 'check_tcp -H HOST -p PORT', 'unchanged');
});

t.test('fall and rise: hysteresis settings, default 1 and 1, 1-100', async (t) => {
  const { app } = await buildTestApp(t);
  const created = await call(app, 'POST', '/monitoring/fg', { name: 'h', command: 'check_tcp -H HOST -p PORT', fall: 3, rise: '2' });
  t.equal(created.status, 200);
  t.match(created.body.params, { fall: 3, rise: 2 });
  const modified = await call(app, 'PUT', '/monitoring/fg/check_tcp', { fall: 2 });
  t.equal(modified.status, 200, 'templates take them too');
  t.match(modified.body.params, { fall: 2, rise: 1 });
  const bad = await call(app, 'PUT', '/monitoring/fg/h', { rise: 0 });
  t.equal(bad.status, 400);
  t.equal(bad.body.message, "'rise' has to be an integer number between '1' and '100'");
});
