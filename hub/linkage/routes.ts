// Operator routes of certificate linkage files (public listener, admin bearer token): import a signed
// file and read the imports. The file is the request body as it was signed (any content type; the
// format is shared/linkage.ts), the detached signature comes in the `mykey-linkage-signature` header
// (base64), so the signed bytes are never re-encoded on the way.
import type { Context, Env, Hono } from 'hono';
import { MyKeyError } from '../../shared/errors.ts';
import type { AuditInput } from '../store/console-repo.ts';
import { adminAuth } from '../http/auth.ts';
import type { OpenApi } from '../http/openapi.ts';
import { problem } from '../http/problem.ts';
import { createRouter } from '../http/router.ts';
import type { LinkageImporter } from './import.ts';

/** The header that carries the detached signature of the body. */
export const LINKAGE_SIGNATURE_HEADER = 'mykey-linkage-signature';

export interface LinkageRoutesDeps {
  importer: LinkageImporter;
  adminToken: () => string;
  /** jpki.linkageMaxBytes: the body limit of the import route (not http.maxBodyBytes). */
  maxBytes: number;
  audit?: (e: AuditInput) => void | Promise<void>;
}

class TooLarge extends Error {}

/** The body's exact bytes, at most `max`, with or without Content-Length. */
async function bodyBytes(c: Context, max: number): Promise<Uint8Array> {
  const declared = c.req.header('content-length');
  if (declared !== undefined && Number(declared) > max) throw new TooLarge();
  const body = c.req.raw.body as unknown as AsyncIterable<Uint8Array> | null;
  if (!body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) throw new TooLarge();
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks, size));
}

export function mountLinkageRoutes<E extends Env>(app: Hono<E>, api: OpenApi, deps: LinkageRoutesDeps): void {
  const r = createRouter(api, { operator: adminAuth(deps.adminToken) });
  const tag = 'Operator';

  r.route(
    {
      method: 'post',
      path: '/v1/admin/linkage-imports',
      tag,
      auth: 'operator',
      summary:
        'Import a certificate linkage file (新旧シリアル番号紐付け; the body as signed, its detached signature in the mykey-linkage-signature header): each record re-binds a MyKey ID to its renewed certificate. The report lists the lines carried, already carried and refused (with their codes)',
      responses: { 200: { description: 'the report: carried, alreadyCarried, refused (line, code, message), resumed; with ?dryRun=true what the file would do, nothing written' } },
      errors: ['linkage_signers_unconfigured', 'linkage_signature_missing', 'linkage_signature_invalid', 'linkage_file_too_large', 'linkage_file_malformed', 'linkage_issuer_unknown'],
    },
    async (c) => {
      let bytes: Uint8Array;
      try {
        bytes = await bodyBytes(c, deps.maxBytes);
      } catch (e) {
        if (e instanceof TooLarge) {
          await deps.importer.recordRefused('api', 'linkage_file_too_large');
          return problem(c, 'linkage_file_too_large', `the file is larger than ${deps.maxBytes} bytes`);
        }
        return problem(c, 'bad_request', 'the body could not be read');
      }
      try {
        const dryRun = c.req.query('dryRun') === 'true';
        const report = await deps.importer.importFile(bytes, c.req.header(LINKAGE_SIGNATURE_HEADER), 'api', { dryRun });
        if (dryRun) return c.json(report);
        await deps.audit?.({
          at: Date.now(),
          actor: 'api:admin',
          role: 'operator',
          action: 'linkage.import',
          target: report.file.sha256.slice(0, 16),
          detail: { records: report.file.records, carried: report.carried.length, alreadyCarried: report.alreadyCarried.length, refused: report.refused.length, via: 'api' },
        });
        return c.json(report);
      } catch (e) {
        if (e instanceof MyKeyError) return problem(c, e.code, e.message);
        throw e;
      }
    },
  );

  r.route(
    {
      method: 'get',
      path: '/v1/admin/linkage-imports',
      tag,
      auth: 'operator',
      summary: 'The last linkage imports, newest first (refused ones with their code)',
      responses: { 200: { description: 'imports' } },
    },
    async (c) =>
      c.json(
        (await deps.importer.recentImports(50)).map((x) => ({
          id: x.id,
          source: x.source,
          sha256: x.file_sha256,
          issuer: x.issuer,
          created: x.created,
          records: x.records,
          carried: x.carried,
          alreadyCarried: x.already,
          refused: x.refused,
          code: x.code,
          at: new Date(x.started_at).toISOString(),
        })),
      ),
  );

  r.mount(app);
}
