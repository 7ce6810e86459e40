import t from 'tap';
import { takeResponse } from '../../lab/http-response.js';

const body = '{"backend":"b1"}';
const resp = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

t.test('takes one response and leaves the rest', async (t) => {
  const taken = takeResponse(Buffer.from(resp + resp.slice(0, 10)));
  t.ok(taken);
  t.equal(taken!.response.status, 200);
  t.equal(taken!.response.headers['content-type'], 'application/json');
  t.equal(taken!.response.body.toString(), body);
  t.equal(taken!.rest.toString(), resp.slice(0, 10));
});

t.test('waits for more bytes in the header or the body', async (t) => {
  t.equal(takeResponse(Buffer.from(resp.slice(0, 20))), undefined);
  t.equal(takeResponse(Buffer.from(resp.slice(0, resp.length - 1))), undefined);
});

t.test('rejects what it cannot frame', async (t) => {
  t.throws(() => takeResponse(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n')), /bad status line/);
  t.throws(() => takeResponse(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')), /transfer-encoding/);
  t.throws(() => takeResponse(Buffer.from('HTTP/1.1 200 OK\r\n\r\n')), /content-length/);
  t.throws(() => takeResponse(Buffer.alloc(20000, 'a')), /too long/);
  t.equal(takeResponse(Buffer.from('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n'))!.response.status, 503);
});
