import t from 'tap';
import {
  bodyProblem,
  bodySchema,
  booleanParam,
  enumParam,
  helpParams,
  integerParam,
  messages,
  ParamError,
  parseParams,
  patternParam,
} from '../../src/api/params.js';
import { backendIpParam, backendPortParam, farmnameParam, nattypeParam, persistenceParam, vportParam } from '../../src/api/farm-params.js';

t.test('messages use ZEVENET wording and list style', async (t) => {
  t.equal(messages.noParams, 'No parameter has been sent. Please, try with:');
  t.equal(messages.missing(['vport']), "The required parameter 'vport' is missing.");
  t.equal(messages.missing(['a', 'b']), "The required parameters 'a' and 'b' are missing.");
  t.equal(messages.missing(['a', 'b', 'c']), "The required parameters 'a', 'b' and 'c' are missing.");
  t.equal(messages.unknown(['foo'], ['a', 'b']), "The parameter 'foo' is not correct for this call. Please, try with: 'a', 'b'");
  t.equal(messages.unknown(['foo', 'bar'], ['a']), "The parameters 'foo' and 'bar' are not correct for this call. Please, try with: 'a'");
  t.equal(messages.blank('ip'), "The parameter 'ip' can't be in blank.");
  t.equal(messages.notScalar('ip', ['x']), "The parameter 'ip' does not expect a ARRAY as input");
  t.equal(messages.notScalar('ip', { x: 1 }), "The parameter 'ip' does not expect a HASH as input");
  t.equal(messages.oneOf('p', ['a', 'b']), "The parameter 'p' expects one of the following values: 'a', 'b'");
  t.equal(messages.notValid('farmname', 'a_b'), "The value 'a_b' is not valid for the parameter 'farmname'.");
  t.equal(messages.notValid('port', 7), "The value '7' is not valid for the parameter 'port'.");
  t.equal(messages.notValid('port', true), "The value 'true' is not valid for the parameter 'port'.");
  t.equal(messages.integerBetween('weight', 1, 9), "'weight' has to be an integer number between '1' and '9'");
  t.equal(messages.integerAtLeast('max_conns', 0), "'max_conns' has to be an integer number greater than or equal to '0'");
});

t.test('enumParam: values, aliases, blank', async (t) => {
  const p = enumParam(['a', 'b'] as const, { alias: 'a' });
  t.equal(p.parse('a'), 'a');
  t.equal(p.parse('alias'), 'a');
  t.equal(p.parse('c'), undefined);
  t.equal(p.parse('toString'), undefined, 'no prototype keys as aliases');
  t.equal(p.parse(1), undefined);
  t.strictSame(p.possibleValues, ['a', 'b', 'alias']);
  t.strictSame(p.schema, { type: 'string', enum: ['a', 'b', 'alias'] });
  t.equal(p.allowBlank, false);
  t.equal(p.invalidMessage('x', 'c'), "The parameter 'x' expects one of the following values: 'a', 'b', 'alias'");
  t.equal(nattypeParam.parse('snat'), 'nat');
  t.equal(persistenceParam.parse('none'), '');
  t.equal(persistenceParam.parse('ip'), 'srcip');
  t.equal(persistenceParam.parse(''), '');
  t.equal(persistenceParam.allowBlank, true);
});

t.test('integerParam: numbers and numeric strings within bounds', async (t) => {
  const weight = integerParam(1, 9);
  for (const [v, want] of [
    [1, 1],
    [9, 9],
    ['5', 5],
    ['05', 5],
    [0, undefined],
    [10, undefined],
    ['10', undefined],
    [2.5, undefined],
    ['2.5', undefined],
    [' 5', undefined],
    ['5 ', undefined],
    ['5e0', undefined],
    ['0x5', undefined],
    ['-1', undefined],
    ['', undefined],
    [true, undefined],
    [null, undefined],
    [Number.NaN, undefined],
  ] as [unknown, number | undefined][]) {
    t.equal(weight.parse(v), want, JSON.stringify(v));
  }
  t.equal(weight.interval, "Expects a value between '1' and '9'.");
  t.equal(weight.invalidMessage('weight', 0), "'weight' has to be an integer number between '1' and '9'");
  const atLeast = integerParam(0);
  t.equal(atLeast.parse('0'), 0);
  t.equal(atLeast.parse(2_147_483_647), 2_147_483_647);
  t.equal(atLeast.parse(2_147_483_648), undefined, 'capped at 2^31-1');
  t.equal(atLeast.parse('9999999999'), undefined);
  t.equal(atLeast.interval, "Expects a value between '0' and '-'.");
  t.equal(atLeast.invalidMessage('max_conns', -1), "'max_conns' has to be an integer number greater than or equal to '0'");
});

t.test('patternParam, booleanParam and the farm parameters', async (t) => {
  const p = patternParam('^[a-z]+$', { check: (v) => v !== 'no', description: 'letters' });
  t.equal(p.parse('abc'), 'abc');
  t.equal(p.parse('no'), undefined, 'the check refines the pattern');
  t.equal(p.parse('ABC'), undefined);
  t.equal(p.parse(5), undefined);
  t.equal(p.description, 'letters');
  const b = booleanParam();
  t.equal(b.parse('true'), true);
  t.equal(b.parse(false), false);
  t.equal(b.parse('yes'), undefined);
  t.equal(b.invalidMessage('log', 'yes'), "The parameter 'log' expects one of the following values: 'true', 'false'");

  t.equal(farmnameParam.parse('web-1'), 'web-1');
  t.equal(farmnameParam.parse('0'), undefined);
  t.equal(farmnameParam.parse('00'), '00', 'only 0 itself is reserved');
  t.equal(farmnameParam.invalidMessage('farmname', '0'), "The value '0' is a reserved word of the parameter 'farmname'.");
  t.equal(farmnameParam.invalidMessage('farmname', 'a_b'), "The value 'a_b' is not valid for the parameter 'farmname'.");
  t.equal(farmnameParam.parse('a'.repeat(64)), 'a'.repeat(64));
  t.equal(farmnameParam.parse('a'.repeat(65)), undefined);
  t.equal(farmnameParam.invalidMessage('farmname', 'a'.repeat(65)), "The parameter 'farmname' accepts at most 64 characters (this one has 65).");
  t.equal(backendIpParam.parse('10.250.0.1'), '10.250.0.1');
  for (const bad of ['10.250.0.256', '10.250.00.1', '10.250.0', '::1', ' 10.250.0.1', '0.0.0.0', '127.0.0.1', '224.0.0.1', '240.0.0.1', '255.255.255.255']) {
    t.equal(backendIpParam.parse(bad), undefined, bad);
  }
  t.equal(
    backendIpParam.invalidMessage('ip', '224.0.0.1'),
    "The value '224.0.0.1' is not valid for the parameter 'ip': 224.0.0.0/4 is multicast (RFC 5771); a backend must be a unicast address.",
  );
  t.equal(backendIpParam.invalidMessage('ip', 'x'.repeat(500)), `The value '${'x'.repeat(80)}...' is not valid for the parameter 'ip'.`, 'long values are cut');
  t.equal(vportParam.parse('80,90:100'), '80,90:100');
  t.equal(vportParam.parse('90:80'), '90:80', 'the grammar allows it; the route reports the range');
  t.equal(vportParam.parse('80-90'), undefined);
  t.equal(backendPortParam.parse(''), null);
  t.equal(backendPortParam.parse('8080'), 8080);
  t.equal(backendPortParam.parse(8080), 8080);
  for (const bad of ['080', '0', '65536', 0, 65536, 80.5, '80:90', ' 80']) t.equal(backendPortParam.parse(bad), undefined, JSON.stringify(bad));
});

const specs = {
  name: patternParam('^[a-z]+$'),
  weight: integerParam(1, 9),
  mode: enumParam(['a', 'b'] as const),
  persistence: persistenceParam,
};

t.test('bodySchema and helpParams come from the same specs', async (t) => {
  t.strictSame(bodySchema(specs, ['name']), {
    type: 'object',
    minProperties: 1,
    additionalProperties: false,
    properties: {
      name: { type: 'string', pattern: '^[a-z]+$' },
      weight: specs.weight.schema,
      mode: { type: 'string', enum: ['a', 'b'] },
      persistence: persistenceParam.schema,
    },
    required: ['name'],
  });
  t.notOk('required' in bodySchema(specs), 'no empty required list');
  t.strictSame(helpParams(specs, ['name']), [
    { name: 'name', options: ['non_blank', 'required'] },
    { name: 'weight', interval: "Expects a value between '1' and '9'.", options: ['non_blank'] },
    { name: 'mode', options: ['non_blank'], possible_values: ['a', 'b'] },
    { name: 'persistence', possible_values: ['', 'srcip', 'srcport', 'srcmac', 'srcip_srcport', 'srcip_dstport', 'none', 'ip'] },
  ]);
});

t.test('bodyProblem checks in order: help, required, unknown, then each value in catalog order', async (t) => {
  const problem = (body: unknown, required: string[] = ['name']) => bodyProblem(specs, required, body);
  for (const body of [undefined, null, {}, [], 'x', 5]) {
    const p = problem(body);
    t.ok(p instanceof ParamError);
    t.equal(p?.message, 'No parameter has been sent. Please, try with:', JSON.stringify(body));
    t.strictSame(p?.help, helpParams(specs, ['name']));
  }
  t.equal(problem({ foo: 1 })?.message, "The required parameter 'name' is missing.", 'required before unknown');
  t.equal(problem({ foo: 1 }, ['name', 'mode'])?.message, "The required parameters 'name' and 'mode' are missing.");
  t.equal(
    problem({ name: 'x', foo: 1, bar: 2, weight: 0 })?.message,
    "The parameters 'foo' and 'bar' are not correct for this call. Please, try with: 'name', 'weight', 'mode', 'persistence'",
    'unknown before values',
  );
  t.equal(problem({ name: 'x', toString: 1 })?.message.startsWith("The parameter 'toString' is not correct"), true, 'no prototype keys');
  t.equal(problem({ mode: 'z', weight: 0, name: 'X' })?.message, "The value 'X' is not valid for the parameter 'name'.", 'catalog order');
  t.equal(problem({ mode: 'z', weight: 0, name: 'x' })?.message, "'weight' has to be an integer number between '1' and '9'");
  t.equal(problem({ mode: 'z', name: 'x' })?.message, "The parameter 'mode' expects one of the following values: 'a', 'b'");
  t.equal(problem({ name: '' })?.message, "The parameter 'name' can't be in blank.");
  t.equal(problem({ name: null })?.message, "The parameter 'name' can't be in blank.");
  t.equal(problem({ name: [] })?.message, "The parameter 'name' can't be in blank.");
  t.equal(problem({ name: ['x'] })?.message, "The parameter 'name' does not expect a ARRAY as input");
  t.equal(problem({ name: { x: 1 } })?.message, "The parameter 'name' does not expect a HASH as input");
  t.equal(problem({ name: 'x', persistence: '' }), null, 'blank allowed where it means something');
  t.equal(problem({ name: 'x', weight: '3', mode: 'b' }), null);
  t.equal(problem({ weight: 3 }, []), null);
});

t.test('parseParams returns normalized values or throws the first problem', async (t) => {
  t.strictSame(parseParams(specs, { name: 'x', weight: '3', persistence: 'ip' }, ['name']), { name: 'x', weight: 3, persistence: 'srcip' });
  t.strictSame(parseParams(specs, { mode: 'a' }), { mode: 'a' }, 'absent parameters stay absent');
  t.throws(() => parseParams(specs, { weight: 3 }, ['name']), new ParamError("The required parameter 'name' is missing."));
  t.throws(() => parseParams(specs, {}), { message: 'No parameter has been sent. Please, try with:' });
});
