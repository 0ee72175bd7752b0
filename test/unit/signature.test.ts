import { expect } from 'chai';
import { computeSignature, verifySignature } from '../../services/web/signature.ts';

// Vectors computed outside Node, with coreutils:
//   printf '%s' '/form/?lang=en{"data":{"company_name":"Acme"}}s3cr3t-ui' | sha256sum
//   printf '%s' '/form/data=%7B%7Ds3cr3t-ui' | sha256sum
//   printf '/form/caf\xc3\xa9\x00\xffs3cr3t-ui' | sha256sum
const SECRET = 's3cr3t-ui';
const VECTORS = [
  {
    path: '/form/?lang=en',
    body: Buffer.from('{"data":{"company_name":"Acme"}}'),
    hex: 'c62b68fc024b5a022ec69c02c9ecfef5d01e91393b7b9a0f4676d4ab3f74918e',
  },
  {
    path: '/form/',
    body: Buffer.from('data=%7B%7D'),
    hex: '12584fb9c79094f72db642430776747d934ac118efdb84ac84cbe5a5e24f92e8',
  },
  {
    path: '/form/',
    body: Buffer.from([0x63, 0x61, 0x66, 0xc3, 0xa9, 0x00, 0xff]),
    hex: '9037d14b7d3dbe939b2731333ff04eba2e2ce4f99948a163055ee7dbbb851dfe',
  },
];

describe('signature', () => {
  describe('computeSignature', () => {
    for (const [i, v] of VECTORS.entries()) {
      it(`matches the sha256sum vector ${i + 1} (path + raw body bytes + secret)`, () => {
        expect(computeSignature(v.path, v.body, SECRET)).to.equal(v.hex);
      });
    }
  });

  describe('verifySignature', () => {
    const [v] = VECTORS as [(typeof VECTORS)[number]];

    it('accepts the exact lowercase hex digest', () => {
      expect(verifySignature(v.hex, v.path, v.body, SECRET)).to.equal(true);
    });

    it('refuses a missing, empty, truncated, extended or uppercase signature', () => {
      for (const given of [
        undefined,
        '',
        v.hex.slice(0, 63),
        v.hex.slice(0, 32),
        `${v.hex}0`,
        v.hex.toUpperCase(),
        ` ${v.hex.slice(1)}`,
      ]) {
        expect(verifySignature(given, v.path, v.body, SECRET), String(given)).to.equal(false);
      }
    });

    it('refuses a signature with one digit changed', () => {
      const last = v.hex.at(-1) === '0' ? '1' : '0';
      expect(verifySignature(v.hex.slice(0, -1) + last, v.path, v.body, SECRET)).to.equal(false);
    });

    it('refuses a signature made over another path, query, body or secret', () => {
      expect(verifySignature(v.hex, '/form/', v.body, SECRET)).to.equal(false);
      expect(verifySignature(v.hex, '/form/?lang=de', v.body, SECRET)).to.equal(false);
      expect(verifySignature(v.hex, v.path, Buffer.concat([v.body, Buffer.from(' ')]), SECRET)).to.equal(false);
      expect(verifySignature(v.hex, v.path, v.body, `${SECRET}x`)).to.equal(false);
    });

    it('refuses signatures of 64 characters that are not all ASCII hex', () => {
      // Compared as bytes: a multi-byte character must not make lengths line up differently.
      const withMultibyte = `é${v.hex.slice(1)}`;
      expect(verifySignature(withMultibyte, v.path, v.body, SECRET)).to.equal(false);
      expect(verifySignature('z'.repeat(64), v.path, v.body, SECRET)).to.equal(false);
    });
  });
});
