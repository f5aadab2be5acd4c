// Cross-check and throughput reference for framework/tokenizer (issue #4).
// Run OUTSIDE the repo: mkdir /tmp/tokref && cd /tmp/tokref && npm init -y &&
//   npm install tokenizers @huggingface/tokenizers gpt-3-encoder
// then: node compare.js ../testdata/hf_default_tokenizer.json ../testdata/corpus.txt
// It prints MB/s of tokenizers.js (pure JS) and of Hugging Face tokenizers (Rust,
// N-API) and writes js_ids.json / rs_ids.json to compare with the Go ids
// (go test -bench Encode ./framework/tokenizer gives the Go MB/s).
const fs = require('fs');
(async () => {
  const [tj, corpus] = process.argv.slice(2);
  const text = fs.readFileSync(corpus, 'utf8');
  const bytes = Buffer.byteLength(text);
  const { Tokenizer } = await import('@huggingface/tokenizers');
  const js = new Tokenizer(JSON.parse(fs.readFileSync(tj, 'utf8')), {});
  let ids;
  for (let w = 0; w < 2; w++) ids = js.encode(text, { add_special_tokens: true }).ids;
  let t0 = process.hrtime.bigint(), n = 10;
  for (let i = 0; i < n; i++) ids = js.encode(text, { add_special_tokens: true }).ids;
  let s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`@huggingface/tokenizers (pure JS): ${(bytes * n / s / 1e6).toFixed(2)} MB/s, ${ids.length} ids`);
  fs.writeFileSync('js_ids.json', JSON.stringify(ids));
  const hf = require('tokenizers');
  const rs = hf.Tokenizer.fromFile(tj);
  let e;
  for (let w = 0; w < 2; w++) e = await rs.encode(text, null, { addSpecialTokens: true });
  t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) e = await rs.encode(text, null, { addSpecialTokens: true });
  s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`tokenizers (HF Rust, native): ${(bytes * n / s / 1e6).toFixed(2)} MB/s, ${e.getIds().length} ids`);
  fs.writeFileSync('rs_ids.json', JSON.stringify(e.getIds()));
})().catch(e => { console.error(e); process.exit(1); });
