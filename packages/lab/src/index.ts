export * from './netns.js'
export * from './peer.js'
export type { ProbeOutcome, ProbeTarget } from './peer-main.js'
export * from './foreign.js'
