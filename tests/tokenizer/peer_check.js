// Cross-checks lmforge's tokenizer files and ids against the npm peers (not part of ctest: the
// peers come from `bash ../shared/bench/tokenizer/install_peers.sh DIR`).
//
//   node peer_check.js hf-json TOKENIZER_JSON GOLDEN_JSONL [GOLDEN_SPECIAL_JSONL]
//       Loads a tokenizer.json written by lmforge (Tokenizer::save_tokenizer_json) in HF
//       tokenizers (@anush008/tokenizers, native) and compares its ids with the golden ids.
//       HF always cuts added tokens out of the text, so golden strings holding special-token
//       text are compared through the .special.jsonl file (all specials allowed) instead.
//   node peer_check.js tiktoken-ids ENC TEXT_FILE IDS_FILE
//       tiktoken (WASM) encode_ordinary of the whole file against lmforge's ids, stored as
//       little-endian u32 (bench_tokenizer_encode --write-ids DIR).
// NPM_DIR: the peers' folder (default ./tokenizer-peers). Prints one JSON line; exit 1 on any
// mismatch.
const fs = require('fs'), path = require('path');
const NPM = process.env.NPM_DIR || path.join(process.cwd(), 'tokenizer-peers');
const req = (m) => require(path.join(NPM, 'node_modules', m));

function readJsonl(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length).map((l) => JSON.parse(l));
}

function firstDiff(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

async function hfJson(jsonPath, golden, special) {
  const { Tokenizer } = req('@anush008/tokenizers');
  const tok = Tokenizer.fromFile(jsonPath);
  let checked = 0, skipped = 0;
  const mismatches = [];
  const cases = readJsonl(golden).map((c) => ({ ...c, special: false }));
  if (special) cases.push(...readJsonl(special).map((c) => ({ ...c, special: true })));
  for (const c of cases) {
    if (!c.special && c.text.includes('<|')) { skipped++; continue; }
    const ids = (await tok.encode(c.text, null, { addSpecialTokens: false })).getIds();
    checked++;
    if (ids.length !== c.ids.length || firstDiff(ids, c.ids) !== ids.length) mismatches.push(c.text.slice(0, 60));
  }
  return { check: 'hf-json', file: path.basename(jsonPath), checked, skipped_special_text: skipped,
           mismatches: mismatches.length, examples: mismatches.slice(0, 5) };
}

function tiktokenIds(enc, textFile, idsFile) {
  const t = req('tiktoken').get_encoding(enc);
  const theirs = t.encode_ordinary(fs.readFileSync(textFile, 'utf8'));
  const buf = fs.readFileSync(idsFile);
  const ours = new Uint32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const same = theirs.length === ours.length && firstDiff(theirs, ours) === ours.length;
  return { check: 'tiktoken-ids', enc, file: path.basename(textFile), tiktoken_tokens: theirs.length,
           lmforge_tokens: ours.length, identical: same, first_difference: same ? null : firstDiff(theirs, ours) };
}

async function main() {
  const [mode, ...a] = process.argv.slice(2);
  let r;
  if (mode === 'hf-json') r = await hfJson(a[0], a[1], a[2]);
  else if (mode === 'tiktoken-ids') r = tiktokenIds(a[0], a[1], a[2]);
  else throw new Error('usage: peer_check.js hf-json|tiktoken-ids ...');
  console.log(JSON.stringify(r));
  if (r.mismatches > 0 || r.identical === false) process.exit(1);
}
main().catch((e) => { console.error(e); process.exit(1); });
