import { describe, expect, it } from 'vitest';
import { checkName } from '../src/common/names.js';

describe('checkName', () => {
  it('accepts safe names and rejects the rest naming the value', () => {
    expect(checkName('container', 'bank.accounts-1')).toBe('bank.accounts-1');
    expect(() => checkName('container', '../etc')).toThrow(/bad container "\.\.\/etc"/);
    expect(() => checkName('job', '')).toThrow(/bad job ""/);
    expect(() => checkName('job', 'a'.repeat(64))).toThrow(/bad job/);
  });
});
