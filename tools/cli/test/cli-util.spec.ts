// Flag parsers: what they accept and the message for what they refuse.
import { InvalidArgumentError } from 'commander';
import { choiceArg, intArg, numberArg } from '../src/cli-util';

describe('numberArg', () => {
  it.each([
    { range: [0, 1, { min: true }] as const, raw: '5e-4', want: 0.0005 },
    { range: [0, 1, { min: true }] as const, raw: '1', want: 1 },
    { range: [0, 100, {}] as const, raw: '0', want: 0 },
    { range: [0, 1, { min: true, max: true }] as const, raw: ' 0.99 ', want: 0.99 },
  ])('$raw in $range.0..$range.1 → $want', ({ range, raw, want }) => {
    expect(numberArg(range[0], range[1], range[2])(raw)).toBe(want);
  });

  it.each([
    { range: [0, 1, { min: true }] as const, raw: '0', message: 'must be a number in (0, 1], got "0"' },
    { range: [0, 1, { min: true, max: true }] as const, raw: '1', message: 'must be a number in (0, 1), got "1"' },
    { range: [0, 100, {}] as const, raw: '-1', message: 'must be a number in [0, 100], got "-1"' },
    { range: [0, 1, {}] as const, raw: 'abc', message: 'must be a number in [0, 1], got "abc"' },
    { range: [0, 1, {}] as const, raw: '', message: 'must be a number in [0, 1], got ""' },
    { range: [0, 1, {}] as const, raw: 'Infinity', message: 'must be a number in [0, 1], got "Infinity"' },
  ])('refuses "$raw": $message', ({ range, raw, message }) => {
    const parse = numberArg(range[0], range[1], range[2]);
    expect(() => parse(raw)).toThrow(InvalidArgumentError);
    expect(() => parse(raw)).toThrow(message);
  });
});

describe('choiceArg', () => {
  const parse = choiceArg({ 'class-mass': 2, uniform: 1 });
  it.each([['uniform'], ['class-mass']])('accepts %s', (raw) => {
    expect(parse(raw)).toBe(raw);
  });
  it.each([['Uniform'], [''], ['toString']])('refuses "%s", naming the choices', (raw) => {
    expect(() => parse(raw)).toThrow(InvalidArgumentError);
    expect(() => parse(raw)).toThrow(`expected one of class-mass, uniform, got "${raw}"`);
  });
});

describe('intArg', () => {
  it.each([
    { raw: '3', want: 3 },
    { raw: '-2', want: -2 },
  ])('$raw → $want', ({ raw, want }) => expect(intArg(-5, 5)(raw)).toBe(want));

  it.each(['2.5', '6', 'x', '1e3'])('refuses %s', (raw) => expect(() => intArg(-5, 5)(raw)).toThrow(`must be an integer in [-5, 5], got "${raw}"`));
});
