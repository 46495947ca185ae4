export * from './app.js'
export * from './main.js'
