/**
 * The agent's life on a host: choosing a backend beside the firewalls already there, enforcing
 * after a restart without its policy source, suspend, idle, and unpairing with each restore mode.
 */
import type { Runner } from '@palisade/agent'
import { readHost, runChecked } from '@palisade/agent'
import { NFT_TABLE } from '@palisade/firewall'
import {
  addDockerUserLike,
  addFirewalldLike,
  Lab,
  LabAgent,
  resetFirewall,
  runPalisade,
  waitFor,
} from '@palisade/lab'
import { existsSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const POLICY = {
  version: 1,
  enforcement_mode: 'full',
  firewall_coexistence: { illumio_primary: true },
  rules: [
    { action: 'allow', direction: 'inbound', peers: 'any', services: [{ proto: 6, port: 80 }] },
  ],
}

const hasOurTable = async (run: Runner) =>
  (await readHost(run)).ruleset.tables.some((t) => t.family === 'inet' && t.name === NFT_TABLE)
const iptLines = async (run: Runner, tool = 'iptables-nft') =>
  (await runChecked(run, `${tool}-save`, []))
    .split('\n')
    .filter((l) => l.startsWith('-A') || l.startsWith(':'))

describe('agent lifecycle (real kernel)', () => {
  let lab: Lab
  beforeAll(async () => {
    lab = await Lab.create(['l1'])
  })
  afterAll(async () => {
    await lab?.destroy()
  })

  it.each([
    [
      'iptables-legacy rules',
      'iptables-legacy',
      'manual',
      (run: Runner) =>
        runChecked(run, 'iptables-legacy', [
          '-A',
          'INPUT',
          '-p',
          'tcp',
          '--dport',
          '22',
          '-j',
          'ACCEPT',
        ]),
    ],
    [
      'a Docker-like DOCKER-USER chain',
      'iptables-nft',
      'docker',
      (run: Runner) => addDockerUserLike(run, 'nft'),
    ],
    [
      'a firewalld-like table',
      'nftables',
      'firewalld',
      (run: Runner) => addFirewalldLike(run, [22]),
    ],
  ] as const)(
    '--backend auto beside %s chooses %s and names %s',
    async (_n, backend, kind, setup) => {
      const h = lab.host('l1')
      await setup(h.run)
      const agent = await LabAgent.start(h.ns, 'auto', POLICY)
      try {
        const s = await agent.status()
        expect(s?.backend).toBe(backend)
        expect(s?.survey.firewalls.map((f) => f.kind)).toContain(kind)
        const { out } = await runPalisade(h.ns, ['agent', 'status', '--state-dir', agent.stateDir])
        expect(out).toContain(`backend:     ${backend}`)
        expect(out).toMatch(new RegExp(`firewalls:.*${kind}`))
      } finally {
        await agent.cleanup()
        await resetFirewall(h.run)
      }
    },
  )

  it('warns about a host that mixes legacy and nf_tables rules', async () => {
    const h = lab.host('l1')
    await runChecked(h.run, 'iptables-legacy', [
      '-A',
      'INPUT',
      '-p',
      'tcp',
      '--dport',
      '22',
      '-j',
      'ACCEPT',
    ])
    await addFirewalldLike(h.run, [22])
    const agent = await LabAgent.start(h.ns, 'auto', POLICY)
    try {
      expect((await agent.status())?.warnings.join(' ')).toMatch(/mixes iptables-legacy/)
    } finally {
      await agent.cleanup()
      await resetFirewall(h.run)
    }
  })

  it('enforces the last known-good policy after a restart (and a reboot) without its policy file', async () => {
    const h = lab.host('l1')
    const agent = await LabAgent.start(h.ns, 'nftables', { ...POLICY, version: 7 })
    try {
      await agent.stop()
      await resetFirewall(h.run) // a reboot empties the kernel
      const r = runPalisade(h.ns, [
        'agent',
        'run',
        '--state-dir',
        agent.stateDir,
        '--backend',
        'nftables',
      ])
      await waitFor('the restarted agent to re-apply version 7', async () =>
        (await hasOurTable(h.run)) ? true : undefined,
      )
      const s = await waitFor('status', async () => {
        const st = await agent.status()
        return st?.enforcement.applied?.version === 7 &&
          st.policy?.source === 'last known-good copy'
          ? st
          : undefined
      })
      expect(s.enforcement.health).toBe('healthy')
      await runChecked(h.run, 'pkill', ['-TERM', '-f', agent.stateDir])
      await r
    } finally {
      await agent.cleanup()
      await resetFirewall(h.run)
    }
  })

  it('suspend removes our rules and stops repairing; unsuspend enforces again', async () => {
    const h = lab.host('l1')
    const agent = await LabAgent.start(h.ns, 'nftables', POLICY)
    try {
      expect(
        (await runPalisade(h.ns, ['agent', 'suspend', '--state-dir', agent.stateDir])).code,
      ).toBe(0)
      await waitFor('our table to go', async () => (!(await hasOurTable(h.run)) ? true : undefined))
      expect((await agent.status())?.suspended).toBe(true)
      // Another process writes a table in our name while we are suspended: left alone. The
      // kernel's change event reaches the agent within milliseconds; it is given two seconds.
      const before = (await agent.status())?.enforcement.tampering.repairs
      await runChecked(h.run, 'nft', ['-f', '-'], {
        stdin: `table inet ${NFT_TABLE} {\n chain input {\n  type filter hook input priority 0; policy accept;\n  tcp dport 4242 accept\n }\n}\n`,
      })
      await new Promise((r) => setTimeout(r, 2000))
      expect(await hasOurTable(h.run), 'no repair while suspended').toBe(true)
      expect((await agent.status())?.enforcement.tampering.repairs).toBe(before)
      expect((await agent.events()).map((e) => e.event_type)).not.toContain('agent.tampering')
      expect(
        (await runPalisade(h.ns, ['agent', 'unsuspend', '--state-dir', agent.stateDir])).code,
      ).toBe(0)
      await waitFor('our table to come back', async () =>
        (await hasOurTable(h.run)) ? true : undefined,
      )
      const types = (await agent.events()).map((e) => e.event_type)
      expect(types).toEqual(expect.arrayContaining(['agent.suspend', 'agent.unsuspend']))
    } finally {
      await agent.cleanup()
      await resetFirewall(h.run)
    }
  })

  it('idle removes our rules and leaves foreign ones', async () => {
    const h = lab.host('l1')
    await addFirewalldLike(h.run, [22])
    const agent = await LabAgent.start(h.ns, 'nftables', POLICY)
    try {
      await agent.writePolicy({ ...POLICY, version: 2, enforcement_mode: 'idle' })
      await agent.waitApplied(2)
      const tables = (await readHost(h.run)).ruleset.tables
        .filter((t) => t.source === 'nft')
        .map((t) => `${t.family} ${t.name}`)
      expect(tables).toEqual(['inet firewalld'])
    } finally {
      await agent.cleanup()
      await resetFirewall(h.run)
    }
  })

  describe('unpair restores the firewall as asked', () => {
    it.each(['iptables-nft', 'nftables'] as const)(
      '%s: default removes ours only; saved puts back what was there; open leaves nothing; closed keeps management ports',
      async (backend) => {
        const h = lab.host('l1')
        for (const mode of ['default', 'saved', 'open', 'closed'] as const) {
          await resetFirewall(h.run)
          await runChecked(h.run, 'iptables-nft', [
            '-A',
            'INPUT',
            '-p',
            'tcp',
            '--dport',
            '2222',
            '-j',
            'ACCEPT',
          ])
          await addFirewalldLike(h.run, [22])
          const foundBefore = await iptLines(h.run)
          const agent = await LabAgent.start(h.ns, backend, POLICY)
          try {
            // something changes the foreign firewall after we paired
            await runChecked(h.run, 'iptables-nft', [
              '-A',
              'INPUT',
              '-p',
              'tcp',
              '--dport',
              '3333',
              '-j',
              'DROP',
            ])
            await agent.stop()
            const r = await runPalisade(h.ns, [
              'agent',
              'unpair',
              '--state-dir',
              agent.stateDir,
              '--firewall-restore',
              mode,
            ])
            expect(r.code, r.out).toBe(0)
            expect(existsSync(agent.stateDir)).toBe(false)
            const rs = (await readHost(h.run)).ruleset
            expect(
              rs.tables.some(
                (t) => t.name === NFT_TABLE || t.chains.some((c) => c.name.startsWith('PALISADE-')),
              ),
            ).toBe(false)
            const lines = await iptLines(h.run)
            const tables = rs.tables.filter((t) => t.source === 'nft').map((t) => t.name)
            if (mode === 'default') expect(lines.filter((l) => l.includes('3333'))).toHaveLength(1)
            if (mode === 'saved') {
              expect(lines).toEqual(foundBefore)
              expect(tables).toEqual(['firewalld'])
            }
            if (mode === 'open')
              expect([lines.filter((l) => l.startsWith('-A')), tables]).toEqual([[], []])
            if (mode === 'closed') {
              expect(tables).toEqual(['palisade_closed'])
              expect(
                await runChecked(h.run, 'nft', ['list', 'table', 'inet', 'palisade_closed']),
              ).toMatch(/tcp dport \{?\s*22\s*\}? accept/)
            }
          } finally {
            await agent.cleanup()
          }
        }
        await resetFirewall(h.run)
      },
    )

    it('refuses to restore a saved firewall that was never saved, after removing ours', async () => {
      const h = lab.host('l1')
      const agent = await LabAgent.start(h.ns, 'nftables', POLICY)
      try {
        await agent.stop()
        await runChecked(h.run, 'rm', ['-rf', `${agent.stateDir}/saved`])
        const r = await runPalisade(h.ns, [
          'agent',
          'unpair',
          '--state-dir',
          agent.stateDir,
          '--firewall-restore',
          'saved',
        ])
        expect(r.code).toBe(1)
        expect(r.out).toMatch(
          /no saved firewall .* our rules were removed, nothing else was changed/,
        )
        expect(await hasOurTable(h.run)).toBe(false)
      } finally {
        await agent.cleanup()
        await resetFirewall(h.run)
      }
    })
  })
})
