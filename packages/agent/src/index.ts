export * from './exec.js'
export * from './netfilter/apply.js'
export * from './netfilter/read-host.js'
