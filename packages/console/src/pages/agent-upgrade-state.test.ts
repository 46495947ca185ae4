import { describe, expect, it } from 'vitest'
import { upgradeState } from './agent-upgrade-state.js'

describe("a VEN's upgrade state", () => {
  it.each([
    ['0.1.0', null, { text: 'No upgrade ordered', pending: false }],
    ['0.1.0', '0.2.0', { text: 'Upgrade to 0.2.0 pending', pending: true }],
    ['0.2.0', '0.2.0', { text: 'Runs release 0.2.0, as ordered', pending: false }],
    // Rolled back, or another build put in place: still not the release ordered.
    ['0.3.0', '0.2.0', { text: 'Upgrade to 0.2.0 pending', pending: true }],
  ])('runs %s, ordered %s', (version, target_release, want) => {
    expect(upgradeState({ version, target_release })).toEqual(want)
  })
})
