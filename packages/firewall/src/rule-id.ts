import { createHash } from 'node:crypto'
import { COMMENT_PREFIX, isOurComment, ourComment } from './ours.js'
import type { Rule } from './ruleset.js'
import { ruleBody } from './ruleset.js'

export const shortHash = (text: string, length = 16) =>
  createHash('sha256').update(text).digest('hex').slice(0, length)

/**
 * The id of a rule in one of our chains. It covers the chain, the position and the body, so a
 * rule that was moved or edited no longer carries the id its content and place would give.
 */
export function ruleId(
  where: string,
  index: number,
  rule: Pick<Rule, 'matches' | 'verdict' | 'log' | 'count'>,
): string {
  return shortHash(`${where}#${index}\n${ruleBody(rule)}`)
}

/** The id of a hook rule (a jump from a built-in chain): its position is judged by mode instead. */
export const hookId = (where: string) => shortHash(`hook\n${where}`)

export const idOf = (comment: string | undefined): string | undefined =>
  comment !== undefined && isOurComment(comment) ? comment.slice(COMMENT_PREFIX.length) : undefined

/** Stamps each rule with the id its chain, position and body give. */
export function withIds(where: string, rules: readonly Rule[]): Rule[] {
  return rules.map((r, i) => ({ ...r, comment: ourComment(ruleId(where, i, r)) }))
}
