// The route registrar: a route declares its auth kind, body schema and own errors once; the
// registrar puts auth, rate limit and body validation in front of the handler and documents the
// derived error list. In-process requests (app.request), as Hono's own tests do.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Hono } from 'hono';
import { Type } from '@sinclair/typebox';
import { adminAuth } from '../../../hub/http/auth.ts';
import { createOpenApi } from '../../../hub/http/openapi.ts';
import { errorHandler } from '../../../hub/http/problem.ts';
import { rateLimit } from '../../../hub/http/rate-limit.ts';
import { AUTH_ERRORS, BODY_ERRORS, createRouter, routeErrors } from '../../../hub/http/router.ts';

const Body = Type.Object({ name: Type.String({ minLength: 1, maxLength: 8 }) }, { additionalProperties: false });

function app() {
  const api = createOpenApi({ title: 't', version: '0' });
  const r = createRouter(api, { operator: adminAuth(() => 'secret') }, { maxBodyBytes: 64 });
  r.route(
    {
      method: 'post',
      path: '/things/{id}',
      tag: 'T',
      summary: 'make a thing',
      auth: 'operator',
      body: Body,
      rateLimit: rateLimit({ perSecond: 1, burst: 2 }),
      responses: { 201: { description: 'made' } },
      errors: ['conflict'],
    },
    // The body is typed from the schema: `name` is a string here.
    (c) => c.json({ id: c.req.param('id'), name: c.get('body').name.toUpperCase() }, 201),
  );
  r.route({ method: 'get', path: '/open', tag: 'T', summary: 'open', auth: 'public', responses: { 200: { description: 'ok' } } }, (c) => c.json({ ok: true }));
  const hono = new Hono();
  hono.onError(errorHandler(() => undefined));
  r.mount(hono);
  hono.get('/openapi.json', (c) => c.json(api.document()));
  return hono;
}

const post = async (a: Hono, body: string, headers: Record<string, string> = {}): Promise<Response> =>
  a.request('/things/7', { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer secret', ...headers }, body });

test('the error list is derived from the auth kind, the body, the rate limit and the route, once each', () => {
  const table: [Parameters<typeof routeErrors>[0], string[]][] = [
    [{ auth: 'public' }, []],
    [{ auth: 'operator' }, [...AUTH_ERRORS.operator]],
    [{ auth: 'device', errors: ['unauthorized', 'not_found'] }, ['device_cert_required', 'unauthorized', 'not_found']],
    [{ auth: 'service', body: Body, rateLimit: true, errors: ['validation_failed', 'conflict'] }, ['unauthorized', 'forbidden', ...BODY_ERRORS, 'rate_limited', 'conflict']],
  ];
  for (const [spec, want] of table) assert.equal(routeErrors(spec), want, JSON.stringify(spec));
});

test('the handler runs after auth and body validation, with the typed body', async () => {
  const a = app();
  const ok = await post(a, '{"name":"lamp"}');
  assert.is(ok.status, 201);
  assert.equal(await ok.json(), { id: '7', name: 'LAMP' });
});

test('each refusal comes from the layer that owns it, with its code', async () => {
  const table: [string, () => Response | Promise<Response>, number, string][] = [
    ['no token', () => post(app(), '{"name":"x"}', { authorization: '' }), 401, 'unauthorized'],
    ['wrong token', () => post(app(), '{"name":"x"}', { authorization: 'Bearer nope' }), 401, 'unauthorized'],
    ['not json', () => post(app(), '{', {}), 400, 'bad_request'],
    ['wrong type', () => post(app(), '{"name":"x"}', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type'],
    ['extra field', () => post(app(), '{"name":"x","admin":true}'), 400, 'validation_failed'],
    ['above the configured body limit', () => post(app(), JSON.stringify({ name: 'x'.repeat(100) })), 413, 'payload_too_large'],
  ];
  for (const [name, send, status, code] of table) {
    const res = await send();
    assert.is(res.status, status, name);
    assert.is(((await res.json()) as { code: string }).code, code, name);
  }
  const a = app();
  const codes: number[] = [];
  for (let i = 0; i < 3; i++) codes.push((await post(a, '{"name":"x"}')).status);
  assert.equal(codes, [201, 201, 429], 'the declared rate limit is in front of the handler');
});

test('the document has the route with its body schema, path parameters in OpenAPI form and every derived error', async () => {
  const doc = (await (await app().request('/openapi.json')).json()) as { paths: Record<string, Record<string, { requestBody?: unknown; responses: Record<string, { description: string }> }>> };
  const op = doc.paths['/things/{id}'].post;
  assert.ok(op.requestBody);
  assert.match(op.responses['401'].description, 'unauthorized');
  assert.match(op.responses['403'].description, 'forbidden');
  assert.match(op.responses['413'].description, 'payload_too_large');
  assert.match(op.responses['429'].description, 'rate_limited');
  assert.match(op.responses['409'].description, 'conflict');
  assert.equal(Object.keys(doc.paths['/open'].get.responses), ['200']);
});

test.run();
