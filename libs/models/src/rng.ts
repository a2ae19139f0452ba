/**
 * A small seeded pseudo-random generator (mulberry32) whose whole state is one
 * unsigned 32-bit integer, so a checkpoint can store it and a resumed run draws
 * exactly the numbers an uninterrupted run would have drawn. Not cryptographic.
 */
export class Rng {
  private s: number;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new RangeError(`Rng seed must be an integer, got ${seed}`);
    this.s = seed >>> 0;
  }

  /** The generator state (uint32); `new Rng(0).setState(x)` continues the stream of any Rng in state x. */
  get state(): number {
    return this.s;
  }

  set state(value: number) {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`Rng state must be a uint32, got ${value}`);
    this.s = value;
  }

  /** Next uint32 in [0, 2^32). */
  nextUint32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Next float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** A seed for a tfjs random op (a positive integer below 2^31). */
  nextSeed(): number {
    return (this.nextUint32() >>> 1) + 1;
  }
}
