// The same edge-hub protocol on a stock Mosquitto (2.x): a TLS listener that requires a client
// certificate from the device CA, the certificate CN (the edge id) as the username, and an ACL file
// with the rules of acl.ts. Used by the interop test and the fan-out benchmark, and a starting point
// for a deployment that puts Mosquitto in front of the hub. Revocation there needs a CRL (`crlfile`)
// or an ACL rewrite plus a reload; the embedded broker does it at once from the device repo.

export interface MosquittoConfigOptions {
  host: string;
  port: number;
  /** Device CA certificate (PEM file). */
  cafile: string;
  /** Broker server certificate and key (PEM files), e.g. from DeviceCa.serverCredentials(). */
  certfile: string;
  keyfile: string;
  /** ACL file written from mosquittoAcl(). */
  aclFile: string;
  /** Extra lines appended as they are (tuning). */
  extra?: string[];
}

/** mosquitto.conf text for the protocol (see mosquitto.conf(5)). */
export function mosquittoConfig(o: MosquittoConfigOptions): string {
  return [
    'per_listener_settings false',
    'persistence false',
    'allow_anonymous false',
    'log_type error',
    'log_type warning',
    'log_dest stderr',
    `acl_file ${o.aclFile}`,
    // MQTT 3.1.1 clients with persistent sessions (clean=false) queue QoS 1 messages while offline.
    'max_queued_messages 1000',
    `listener ${o.port} ${o.host}`,
    `cafile ${o.cafile}`,
    `certfile ${o.certfile}`,
    `keyfile ${o.keyfile}`,
    'require_certificate true',
    'use_identity_as_username true',
    ...(o.extra ?? []),
    '',
  ].join('\n');
}
