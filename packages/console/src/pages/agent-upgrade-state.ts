/** A VEN's upgrade, as the API reports it: the release ordered, and whether it runs it. */
export function upgradeState(v: { version: string; target_release: string | null }): {
  text: string
  pending: boolean
} {
  if (v.target_release === null) return { text: 'No upgrade ordered', pending: false }
  if (v.version === v.target_release)
    return { text: `Runs release ${v.target_release}, as ordered`, pending: false }
  return { text: `Upgrade to ${v.target_release} pending`, pending: true }
}
