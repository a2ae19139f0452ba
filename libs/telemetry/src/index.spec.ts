import { grpcAlreadyLoaded } from './index';

describe('grpcAlreadyLoaded', () => {
  it.each([
    // [module cache keys, expected]
    [['/app/node_modules/@grpc/grpc-js/build/src/index.js'], true],
    [['C:\\app\\node_modules\\@grpc\\grpc-js\\build\\src\\index.js'], true],
    [['/app/node_modules/@grpc/proto-loader/build/src/index.js', '/app/src/main.js'], false],
    [[], false],
  ])('%p → %p', (keys, expected) => {
    expect(grpcAlreadyLoaded(Object.fromEntries(keys.map((k) => [k, {}])))).toBe(expected);
  });
});
