// Release keys and signatures (Ed25519, RFC 8032, through node:crypto). The private key stays with
// whoever cuts releases, off the hub: the hub and the edges hold only the public key.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { Value } from '@sinclair/typebox/value';
import { MyKeyError } from '../../shared/errors.ts';
import { ReleaseManifest, releaseKeyId, type SignedRelease } from '../../shared/release.ts';

export interface ReleaseKeyPair {
  /** PKCS#8 PEM; keep it secret, off the hub. */
  privateKeyPem: string;
  /** SubjectPublicKeyInfo PEM. */
  publicKeyPem: string;
  /** The one-line form for config (`releases.publicKeys`, `updates.releaseKey`): base64 of the SPKI DER. */
  publicKeyLine: string;
  keyId: string;
}

/** A fresh Ed25519 key pair. */
export function generateReleaseKeys(): ReleaseKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    publicKeyLine: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    keyId: releaseKeyId(publicKey),
  };
}

/** Reads a private release key (PKCS#8 PEM); refuses anything but Ed25519. */
export function loadReleasePrivateKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new MyKeyError('validation_failed', 'a release key is Ed25519');
  return key;
}

export interface ManifestOptions {
  version: string;
  minVersion?: string;
  allowDowngrade?: boolean;
  /** Service ids, or ['*'] (default) for every service. */
  services?: string[];
  now?: Date;
}

/** The manifest of a bundle: its digest and size, and what the options say. */
export function manifestFor(bundle: Buffer, o: ManifestOptions): ReleaseManifest {
  const m: ReleaseManifest = {
    format: 1,
    version: o.version,
    digest: createHash('sha256').update(bundle).digest('hex'),
    size: bundle.length,
    minVersion: o.minVersion ?? '0.0.0',
    allowDowngrade: o.allowDowngrade ?? false,
    services: o.services?.length ? o.services : ['*'],
    createdAt: (o.now ?? new Date()).toISOString(),
  };
  const errors = [...Value.Errors(ReleaseManifest, m)].map((e) => `${e.path}: ${e.message}`);
  if (errors.length) throw new MyKeyError('release_manifest_invalid', `invalid manifest:\n  - ${errors.join('\n  - ')}`, { details: { errors } });
  return m;
}

/** Signs the manifest's exact JSON bytes. */
export function signManifest(m: ReleaseManifest, privateKey: KeyObject): SignedRelease {
  const bytes = Buffer.from(JSON.stringify(m), 'utf8');
  return {
    manifest: bytes.toString('base64url'),
    signature: sign(null, bytes, privateKey).toString('base64url'),
    keyId: releaseKeyId(createPublicKey(privateKey)),
  };
}
