// libsodium's crypto_box_seal, composed from audited primitives (@noble/curves, @noble/hashes,
// @noble/ciphers), so that the survivor page needs neither WebAssembly nor a CSP exception:
//
//   ephemeral X25519 key pair (epk, esk)
//   nonce = BLAKE2b-192(epk || recipient_pk)
//   k     = HSalsa20(X25519(esk, recipient_pk), 0^16)          (crypto_box_beforenm)
//   box   = XSalsa20-Poly1305(k, nonce, message) = tag || ct   (crypto_box_afternm, "easy" form)
//   out   = epk || box                                         (48 bytes longer than message)
//
// Tests check it against libsodium itself (Node) and PyNaCl, both ways, and against libsodium's
// published crypto_box vector.
import { x25519 } from "@noble/curves/ed25519.js";
import { blake2b } from "@noble/hashes/blake2.js";
import { hsalsa, xsalsa20poly1305 } from "@noble/ciphers/salsa.js";

// "expand 32-byte k", as little-endian words.
const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);

function words(bytes) {
  const out = new Uint32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) {
    out[i] =
      (bytes[4 * i] | (bytes[4 * i + 1] << 8) | (bytes[4 * i + 2] << 16) | (bytes[4 * i + 3] << 24)) >>> 0;
  }
  return out;
}

function bytesOf(wordArray) {
  const out = new Uint8Array(wordArray.length * 4);
  for (let i = 0; i < wordArray.length; i++) {
    const w = wordArray[i];
    out[4 * i] = w & 0xff;
    out[4 * i + 1] = (w >>> 8) & 0xff;
    out[4 * i + 2] = (w >>> 16) & 0xff;
    out[4 * i + 3] = (w >>> 24) & 0xff;
  }
  return out;
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** crypto_box_beforenm: throws for a small-order public key, as libsodium refuses it. */
export function boxBeforenm(publicKey, secretKey) {
  const shared = x25519.getSharedSecret(secretKey, publicKey);
  const out = new Uint32Array(8);
  hsalsa(SIGMA, words(shared), new Uint32Array(4), out);
  shared.fill(0);
  return bytesOf(out);
}

/** crypto_box_easy: tag || ciphertext. */
export function boxEasy(message, nonce, publicKey, secretKey) {
  const k = boxBeforenm(publicKey, secretKey);
  try {
    return xsalsa20poly1305(k, nonce).encrypt(message);
  } finally {
    k.fill(0);
  }
}

/** crypto_box_seal with a given ephemeral secret key (for tests); use seal() otherwise. */
export function sealWithEphemeral(message, recipientPublicKey, ephemeralSecretKey) {
  const ephemeralPublicKey = x25519.getPublicKey(ephemeralSecretKey);
  const nonce = blake2b(concat(ephemeralPublicKey, recipientPublicKey), { dkLen: 24 });
  return concat(ephemeralPublicKey, boxEasy(message, nonce, recipientPublicKey, ephemeralSecretKey));
}

/** crypto_box_seal: only the holder of the recipient's private key can open the result. */
export function seal(message, recipientPublicKey) {
  const ephemeralSecretKey = x25519.utils.randomSecretKey();
  try {
    return sealWithEphemeral(message, recipientPublicKey, ephemeralSecretKey);
  } finally {
    ephemeralSecretKey.fill(0);
  }
}
