// js-tiktoken's r50k_base (GPT-2's encoding), for the C++ tests and benchmark (peer_tokenizer.cc).
//
//   node js_tiktoken_peer.cjs encode NODE_MODULES IN.json OUT.json
//     IN is a JSON array of strings; OUT gets a JSON array with the ids of each
//     ("<|endoftext|>" allowed as the special token 50256, as Hugging Face's GPT-2 tokenizer does).
//   node js_tiktoken_peer.cjs throughput NODE_MODULES TEXT_FILE MIN_SECONDS OUT.json
//     Encodes the whole file (read as UTF-8) once to warm up, then repeatedly for at least
//     MIN_SECONDS; OUT gets {bytes, runs, seconds, tokens, checksum}.
//
// Exit status 3 when js-tiktoken is missing, 2 for bad arguments.
'use strict';
const fs = require('fs');
const path = require('path');

const [mode, modules, ...args] = process.argv.slice(2);
let tiktoken;
try {
  tiktoken = require(path.join(modules || '', 'js-tiktoken'));
} catch (e) {
  console.error(`js-tiktoken is not installed in ${modules}: run scripts/fetch-assets.sh`);
  process.exit(3);
}
const encoding = tiktoken.getEncoding('r50k_base');

// The checksum the C++ side computes over the same ids: h = h * 31 + id (mod 2^32).
function checksum(ids) {
  let h = 0;
  for (const id of ids) h = (Math.imul(h, 31) + id) >>> 0;
  return h;
}

if (mode === 'encode' && args.length === 2) {
  const texts = JSON.parse(fs.readFileSync(args[0], 'utf8'));
  const ids = texts.map((text) => encoding.encode(text, 'all'));
  fs.writeFileSync(args[1], JSON.stringify(ids));
} else if (mode === 'throughput' && args.length === 3) {
  const buffer = fs.readFileSync(args[0]);
  const text = buffer.toString('utf8');
  const minSeconds = Number(args[1]);
  const ids = encoding.encode(text);
  let runs = 0;
  const start = process.hrtime.bigint();
  let seconds = 0;
  do {
    encoding.encode(text);
    ++runs;
    seconds = Number(process.hrtime.bigint() - start) / 1e9;
  } while (seconds < minSeconds);
  fs.writeFileSync(args[2], JSON.stringify({
    bytes: buffer.length, runs, seconds, tokens: ids.length, checksum: checksum(ids),
  }));
} else {
  console.error('usage: js_tiktoken_peer.cjs encode NODE_MODULES IN.json OUT.json\n' +
                '       js_tiktoken_peer.cjs throughput NODE_MODULES TEXT_FILE MIN_SECONDS OUT.json');
  process.exit(2);
}
