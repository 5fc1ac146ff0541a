import { describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { authorize } from '../../src/common/authz.js';
import { identityFromSan, identityUri } from '../../src/common/tls-identity.js';
import { checkInsecureListen, INSECURE, isLoopbackHost } from '../../src/common/transport-security.js';
import { CLUSTER_ACCESS } from '../../src/cluster/cluster-access.js';
import { agentAccess } from '../../src/node/agent-access.js';
import { SubmitJobRequest } from '../../src/gen/gridckpt/v1/cluster.js';
import { PrepareCheckpointRequest, StartJobRequest } from '../../src/gen/gridckpt/v1/node_agent.js';

// The pieces of authorization that need no socket: reading an identity from
// a certificate's SAN, the access decision, the loopback rule.

describe('identity in a certificate', () => {
  it('reads exactly one gridckpt URI, among other names', () => {
    const uri = identityUri({ role: 'agent', id: 'n1' });
    expect(uri).toBe('spiffe://gridckpt/agent/n1');
    expect(identityFromSan(`URI:${uri}, DNS:localhost, IP Address:127.0.0.1`)).toEqual({ role: 'agent', id: 'n1' });
    expect(identityFromSan('URI:spiffe://other/agent/n1, URI:spiffe://gridckpt/grid/g')).toEqual({ role: 'grid', id: 'g' });
  });

  it('refuses none, two, an unknown role, a bad id, or a quoted value', () => {
    expect(identityFromSan(undefined)).toBeNull();
    expect(identityFromSan('DNS:localhost')).toBeNull();
    expect(identityFromSan('URI:spiffe://gridckpt/agent/a, URI:spiffe://gridckpt/grid/g')).toBeNull();
    expect(identityFromSan('URI:spiffe://gridckpt/root/a')).toBeNull();
    expect(identityFromSan('URI:spiffe://gridckpt/agent/../x')).toBeNull();
    // Node quotes a SAN value holding a comma: it must not read as two names.
    expect(identityFromSan('URI:"spiffe://gridckpt/agent/a, URI:spiffe://gridckpt/grid/g"')).toBeNull();
  });
});

describe('authorize', () => {
  const beat = CLUSTER_ACCESS.heartbeat;
  const req = { nodeId: 'n1', incarnation: 1n, seq: 1n, jobs: [], reportsJobs: false };

  it('no certificate: UNAUTHENTICATED; a role not in the table: PERMISSION_DENIED naming who may', () => {
    expect(authorize('ClusterService.heartbeat', beat, null, req)?.code).toBe(status.UNAUTHENTICATED);
    const denied = authorize('ClusterService.heartbeat', beat, { role: 'operator', id: 'ops' }, req);
    expect(denied?.code).toBe(status.PERMISSION_DENIED);
    expect(denied?.details).toBe('ClusterService.heartbeat: operator "ops" may not call it (only agent)');
  });

  it('the request must name the caller itself', () => {
    expect(authorize('ClusterService.heartbeat', beat, { role: 'agent', id: 'n1' }, req)).toBeNull();
    const other = authorize('ClusterService.heartbeat', beat, { role: 'agent', id: 'n2' }, req);
    expect(other?.code).toBe(status.PERMISSION_DENIED);
    expect(other?.details).toMatch(/node id "n1" is not the caller's own \("n2"\)/);
  });

  it('an operator submits only jobs that are not grid-managed; an agent under a cluster takes jobs from it alone', () => {
    const submit = CLUSTER_ACCESS.submitJob;
    expect(authorize('s', submit, { role: 'operator', id: 'o' }, SubmitJobRequest.fromPartial({ gridManaged: false }))).toBeNull();
    expect(authorize('s', submit, { role: 'operator', id: 'o' }, SubmitJobRequest.fromPartial({ gridManaged: true }))?.code).toBe(status.PERMISSION_DENIED);
    expect(authorize('s', agentAccess(true).startJob, { role: 'operator', id: 'o' }, StartJobRequest.fromPartial({}))?.code).toBe(status.PERMISSION_DENIED);
    expect(authorize('s', agentAccess(false).startJob, { role: 'operator', id: 'o' }, StartJobRequest.fromPartial({}))).toBeNull();
    expect(authorize('s', agentAccess(false).prepareCheckpoint, { role: 'operator', id: 'o' }, PrepareCheckpointRequest.fromPartial({}))?.code).toBe(status.PERMISSION_DENIED);
  });
});

describe('--insecure only on loopback', () => {
  it('knows loopback hosts', () => {
    for (const h of ['127.0.0.1', '127.9.8.7', 'localhost', '[::1]', '::1']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '[::]', '10.0.0.1', '192.168.1.2', 'example.com', '128.0.0.1']) expect(isLoopbackHost(h), h).toBe(false);
  });

  it('names the address it refuses', () => {
    expect(() => checkInsecureListen(INSECURE, '--listen', '0.0.0.0:7070')).toThrow('refusing --insecure on --listen 0.0.0.0:7070: 0.0.0.0 is not a loopback address');
    expect(() => checkInsecureListen(INSECURE, '--listen', '127.0.0.1:7070')).not.toThrow();
  });
});
