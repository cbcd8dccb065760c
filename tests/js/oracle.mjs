// A test oracle: reads one JSON request on stdin, answers one JSON object on stdout.
// It uses the very modules the survivor page bundles (feedback/collect/js) and, as the
// reference, libsodium's own JavaScript build (libsodium-wrappers).
import sodium from "libsodium-wrappers";
import { seal, boxEasy, boxBeforenm } from "../../feedback/collect/js/seal.js";
import { envelopeJson, pad } from "../../feedback/collect/js/envelope.js";

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const bytes = (text) => new Uint8Array(Buffer.from(text, "base64"));

async function main() {
  await sodium.ready;
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const request = JSON.parse(input);
  const ops = {
    // Seal with the page's code.
    seal: () => ({ sealed: b64(seal(bytes(request.message), bytes(request.public_key))) }),
    // Seal and open with libsodium (the reference).
    seal_libsodium: () => ({
      sealed: b64(sodium.crypto_box_seal(bytes(request.message), bytes(request.public_key))),
    }),
    open_libsodium: () => ({
      message: b64(
        sodium.crypto_box_seal_open(bytes(request.sealed), bytes(request.public_key), bytes(request.secret_key)),
      ),
    }),
    // The page's box primitive on a fixed nonce, for libsodium's published vector.
    box_easy: () => ({
      box: b64(boxEasy(bytes(request.message), bytes(request.nonce), bytes(request.public_key), bytes(request.secret_key))),
    }),
    beforenm: () => {
      try {
        return { key: b64(boxBeforenm(bytes(request.public_key), bytes(request.secret_key))) };
      } catch (error) {
        return { error: String(error.message || error) };
      }
    },
    // The page's envelope for some answers.
    envelope: () => ({ padded: b64(pad(envelopeJson(request.envelope))) }),
  };
  process.stdout.write(JSON.stringify(ops[request.op]()));
}

main();
