/** The time as the store records it: ISO 8601 in UTC, which sorts as text. */
export const now = () => new Date().toISOString()
