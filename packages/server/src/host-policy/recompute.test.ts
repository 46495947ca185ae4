import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { bootstrapOrg } from '../bootstrap.js'
import { openDb } from '../db/open.js'
import { hostPolicyServices } from './services.js'

describe('HostPolicyRecompute.idle', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c()
  })

  it('settles only after every run started without waiting, the queued one too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-recompute-'))
    const { db } = await openDb(undefined, dir)
    cleanups.push(async () => {
      await db.destroy()
      await rm(dir, { recursive: true, force: true })
    })
    await bootstrapOrg(db)
    const { hostPolicies } = hostPolicyServices(db)
    const ended: string[] = []
    // the second call queues behind the first, the way a burst of activations does
    void hostPolicies.recompute(1).then(() => ended.push('first'))
    void hostPolicies.recompute(1).then(() => ended.push('queued'))
    await hostPolicies.idle()
    expect(ended).toEqual(['first', 'queued'])
    // nothing running: settles at once, and the store can close under it
    await hostPolicies.idle()
  })
})
