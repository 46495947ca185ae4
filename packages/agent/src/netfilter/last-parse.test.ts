import { describe, expect, it } from 'vitest'
import { lastParse } from './last-parse.js'

describe('lastParse', () => {
  it('parses a listing once while it stays the same, and again when it changes', () => {
    const parsed: string[] = []
    const parse = lastParse((text: string) => {
      parsed.push(text)
      return { lines: text.split('\n') }
    })
    const first = parse('a\nb')
    expect(parse('a\nb')).toBe(first)
    expect(parsed).toEqual(['a\nb'])
    expect(parse('a\nc')).toEqual({ lines: ['a', 'c'] })
    expect(parse('a\nb')).not.toBe(first)
    expect(parsed).toEqual(['a\nb', 'a\nc', 'a\nb'])
  })

  it('a listing that fails to parse is tried again each time, and leaves the last answer kept', () => {
    let calls = 0
    const parse = lastParse((text: string) => {
      calls++
      if (text === 'bad') throw new Error('not a listing')
      return text.length
    })
    expect(parse('good')).toBe(4)
    expect(() => parse('bad')).toThrow('not a listing')
    expect(() => parse('bad')).toThrow('not a listing')
    expect(parse('good')).toBe(4)
    expect(calls).toBe(3)
  })
})
