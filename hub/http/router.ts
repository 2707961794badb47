// The route registrar. Each route declares, once, who may call it (its auth kind), its body schema,
// its rate limit and the errors of its own logic; the registrar puts the auth middleware, the rate
// limit and the body validation in front of the handler, derives the full error list (auth errors,
// body errors, rate_limited, the route's own) and adds the route to the OpenAPI document. The
// handler's `c.get('body')` is typed from the schema, `c.get('device')` / `c.get('credentialId')`
// from the auth kind, through Hono's typed Variables.
import { Hono, type Env, type Handler, type MiddlewareHandler } from 'hono';
import { every } from 'hono/combine';
import type { HttpBindings } from '@hono/node-server';
import type { Static, TSchema } from '@sinclair/typebox';
import type { ErrorCode } from '../../shared/errors.ts';
import type { OpenApi, RouteDoc } from './openapi.ts';
import { jsonBody } from './validate.ts';

/** Who the caller of a device route is: an enrolled, active device. */
export interface DeviceCaller {
  edgeId: string;
  serviceId: string;
}

/** The Hono env of the hub's routes: the node-server bindings (absent in-process `app.request()`). */
export type HubEnv = { Bindings: Partial<HttpBindings> };

/**
 * How a route authenticates its caller: nobody (`public`: holders prove with the card per request,
 * enrollment redemption with its token), a service's API credential (`service`), the operator's
 * bearer token (`operator`) or a device certificate over mutual TLS (`device`).
 */
export type AuthKind = 'public' | 'service' | 'operator' | 'device';

/** The variables each auth kind's middleware sets. */
export interface AuthVariables {
  public: object;
  service: { credentialId: string };
  operator: object;
  device: { device: DeviceCaller };
}

/** The errors each auth kind's middleware answers with. */
export const AUTH_ERRORS: Record<AuthKind, readonly ErrorCode[]> = {
  public: [],
  service: ['unauthorized', 'forbidden'],
  operator: ['unauthorized', 'forbidden'],
  device: ['device_cert_required', 'unauthorized'],
};

/** The errors of reading and validating a JSON body (hub/http/validate.ts). */
export const BODY_ERRORS: readonly ErrorCode[] = ['bad_request', 'validation_failed', 'unsupported_media_type', 'payload_too_large'];

/** The auth middleware of each kind an app serves (`public` needs none). */
export interface Authenticators {
  service?: MiddlewareHandler<{ Bindings: HubEnv['Bindings']; Variables: AuthVariables['service'] }>;
  operator?: MiddlewareHandler;
  device?: MiddlewareHandler<{ Bindings: HubEnv['Bindings']; Variables: AuthVariables['device'] }>;
}

/** The env of one route's handler. */
export type RouteEnv<A extends AuthKind, B extends TSchema | undefined> = {
  Bindings: HubEnv['Bindings'];
  Variables: AuthVariables[A] & (B extends TSchema ? { body: Static<B> } : object);
};

/** The configured body limit (hub config http.maxBodyBytes), carried by each route set's deps. */
export interface BodyLimit {
  maxBodyBytes?: number;
}

/** One route, declared once. */
export interface RouteSpec<A extends AuthKind, B extends TSchema | undefined> extends Omit<RouteDoc, 'request' | 'errors'> {
  auth: A;
  body?: B;
  /** A rate limit middleware (shared between routes that share a budget). */
  rateLimit?: MiddlewareHandler;
  /** The errors of the route's own logic; auth, body and rate-limit errors are added. */
  errors?: readonly ErrorCode[];
}

/** The full error list of a route: its auth kind's, its body's, the rate limit's and its own. */
export function routeErrors(spec: { auth: AuthKind; body?: TSchema; rateLimit?: unknown; errors?: readonly ErrorCode[] }): ErrorCode[] {
  const all: ErrorCode[] = [...AUTH_ERRORS[spec.auth], ...(spec.body ? BODY_ERRORS : []), ...(spec.rateLimit ? (['rate_limited'] as const) : []), ...(spec.errors ?? [])];
  return [...new Set(all)];
}

/**
 * A set of routes on their own Hono app, documented in `api`. `mount` adds them to an app (call it
 * after the last `route`: Hono copies the routes registered so far).
 */
export function createRouter(api: OpenApi, auth: Authenticators = {}, { maxBodyBytes }: { maxBodyBytes?: number } = {}) {
  const routes = new Hono<HubEnv>();
  const authFor = (kind: AuthKind): MiddlewareHandler[] => {
    if (kind === 'public') return [];
    const mw = auth[kind];
    if (!mw) throw new Error(`no authenticator for ${kind} routes`);
    return [mw];
  };
  return {
    /** Registers a route: auth, rate limit and body validation first, then the handler. */
    route<A extends AuthKind, B extends TSchema | undefined = undefined>(spec: RouteSpec<A, B>, handler: Handler<RouteEnv<A, B>>): void {
      const { auth: kind, body, rateLimit, errors: _own, ...doc } = spec;
      api.add({ ...doc, ...(body ? { request: body } : {}), errors: routeErrors(spec) });
      const chain: MiddlewareHandler[] = [...authFor(kind), ...(rateLimit ? [rateLimit] : []), ...(body ? [jsonBody(body, { maxBytes: maxBodyBytes })] : [])];
      const before: MiddlewareHandler<RouteEnv<A, B>> = every(...chain);
      routes.on(spec.method.toUpperCase(), spec.path.replace(/\{(\w+)\}/g, ':$1'), before, handler);
    },
    /** Adds the routes to `app`. */
    mount<E extends Env>(app: Hono<E>): void {
      app.route('/', routes);
    },
  };
}
