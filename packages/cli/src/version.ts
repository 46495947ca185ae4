/** Palisade's version, as the command and the one-file agent report it. */
export const VERSION = '0.1.0'
