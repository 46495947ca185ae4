import { hostPolicyFromLocalFile } from '@palisade/model'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Outbox } from '../outbox.js'
import { DEFAULT_FLOW_CONFIG, FlowCollector } from './collector.js'

describe('FlowCollector', () => {
  it('starts nothing once stopped, whatever policy arrives late (its readers would outlive the agent)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-collector-'))
    const c = new FlowCollector({
      config: DEFAULT_FLOW_CONFIG,
      outbox: new Outbox(join(dir, 'flows'), join(dir, 'flows.offset')),
      log: () => undefined,
      onFlushed: () => undefined,
    })
    const policy = hostPolicyFromLocalFile({
      version: 1,
      enforcement_mode: 'full',
      visibility_level: 'flow_summary',
      rules: [],
    })
    try {
      await c.stop()
      c.configure(policy, true, true)
      expect(c.status).toMatchObject({
        level: 'flow_off',
        readers: { log: 'stopped', confirmations: 'stopped' },
      })
    } finally {
      await c.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
