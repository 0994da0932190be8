/**
 * pcp_client_version = 'auto': the version family of this host's pcp_* tools decides the
 * pcp_node_info reply layout (src/pcp/tool-version.ts).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { resolvePcpClientVersion, versionFamily } from '../../../src/pcp/tool-version';

describe('pcp_client_version auto', () => {
  test('reads the family from pcp_node_info --version', () => {
    assert.equal(versionFamily('pcp_node_info (pgpool-II) 4.3.5\n'), '4.3');
    assert.equal(versionFamily('pcp_node_info (pgpool-II) 4.2.15'), '4.3');
    assert.equal(versionFamily('pcp_node_info (pgpool-II) 4.4.0'), '4.4');
    assert.equal(versionFamily('pcp_node_info (pgpool-II) 4.7.0'), '4.4');
    assert.equal(versionFamily('pcp_node_info (pgpool-II) 5.0.1'), '4.4');
    assert.equal(versionFamily('no version here'), null);
  });

  test('an explicit value is kept; auto always resolves to a layout', () => {
    assert.deepEqual(resolvePcpClientVersion('4.3').version, '4.3');
    assert.deepEqual(resolvePcpClientVersion('4.4').version, '4.4');
    assert.ok(['4.3', '4.4'].includes(resolvePcpClientVersion('auto').version));
  });
});
