export * from './app.js'
export type { AppContext } from './context.js'
export * from './main.js'
export * from './process-guard.js'
